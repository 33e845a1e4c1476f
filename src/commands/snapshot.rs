//! `bridgelab snapshot RUN`: a kept lab's normalized tables.

use super::fail;
use bridgelab::registry::Registry;

pub async fn run(run_id: &str) -> u8 {
    let lab = match bridgelab::apply::attach(&Registry::default(), run_id).await {
        Ok(l) => l,
        Err(e) => return fail(&e),
    };
    match lab.snapshot().await {
        // Exactly the text the test suite snapshots: it ends in a newline.
        Ok(text) => {
            use std::io::Write as _;
            let _ = std::io::stdout().write_all(text.as_bytes());
            0
        }
        Err(e) => fail(&e),
    }
}
