# bridgelab in a privileged container: Debian 12, provisioned by
# ci/install-deps.sh (as .ci/run, the workflows and the Vagrantfile are),
# with bridgelab built, on PATH, and the real dockerd 20.10 and 28.5.2 that
# `bridgelab diff` and the test suite compare against, unpacked in /opt.
#
#   docker build -t bridgelab .
#   docker run --rm --privileged bridgelab                  # the test suite (./ci/test.sh)
#   docker run --rm --privileged -v "$PWD/reports:/reports" bridgelab \
#       sh -c 'bridgelab run --shard 1/3 --junit /reports/shard-1.xml --pcap /reports/pcap scenarios/*.toml scenarios/bugs/*.toml'
#
# --privileged is needed: bridgelab creates network namespaces, mounts them
# under /run/netns and writes their sysctls, and without it Docker mounts
# /proc/sys read-only. br_netfilter must be loaded on the Docker host
# (`modprobe br_netfilter`), or give the container the host's modules with
# `-v /lib/modules:/lib/modules:ro`. Everything bridgelab builds lives in the
# container's own namespaces; the host's are never touched.
FROM debian:bookworm

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src/bridgelab

COPY ci/install-deps.sh ci/install-docker20.sh ci/install-docker28.sh ci/
RUN ./ci/install-deps.sh && ./ci/install-docker20.sh && ./ci/install-docker28.sh
ENV PATH=/root/.cargo/bin:$PATH

COPY . .
RUN cargo build --release --locked \
    && install -m 0755 target/release/bridgelab /usr/local/bin/bridgelab

CMD ["./ci/test.sh"]
