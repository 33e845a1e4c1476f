//! What a served lab's responders see, shared with other processes.
//!
//! `bridgelab up --serve` runs a lab's responders in its own process, and
//! `bridgelab probe` runs in another: the responder that records who a
//! probe seemed to come from is not where the probe's verdict is made. The
//! server answers on a Unix socket beside the lab's run record
//! ([`Registry::socket_path`](crate::registry::Registry::socket_path)):
//! each client gets the line `ready` once it is subscribed, then one JSON
//! line per probe a responder records (`{"token":…,"node":…,"listen":…,
//! "peer":…}`). [`mirror`] replays them into a local [`PeerLog`], so
//! [`check`](super::check) works on a served lab as it does in-process.

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use super::responder::{PeerLog, SeenPeer};

/// One record on the wire.
#[derive(Debug, Serialize, Deserialize)]
struct Line {
    token: u32,
    node: String,
    listen: String,
    peer: std::net::SocketAddr,
}

/// The first line a subscriber gets: records made after it reach it.
const READY: &str = "ready";

/// Serves `log` on a Unix socket at `path` (replacing a stale one) until
/// the returned task is aborted. The socket file is the caller's to remove.
pub fn serve(log: PeerLog, path: &Path) -> io::Result<JoinHandle<()>> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(path)?;
    Ok(tokio::spawn(async move {
        let mut clients = tokio::task::JoinSet::new();
        while let Ok((stream, _)) = listener.accept().await {
            while clients.try_join_next().is_some() {}
            // Subscribed before `ready` is written: nothing after it is missed.
            let rx = log.subscribe();
            clients.spawn(feed(stream, rx));
        }
    }))
}

async fn feed(mut stream: UnixStream, mut rx: tokio::sync::broadcast::Receiver<(u32, SeenPeer)>) {
    if stream.write_all(format!("{READY}\n").as_bytes()).await.is_err() {
        return;
    }
    loop {
        let (token, seen) = match rx.recv().await {
            Ok(x) => x,
            // A slow client misses some: it only waits in vain for them.
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return,
        };
        let line = Line { token, node: seen.node, listen: seen.listen.to_string(), peer: seen.peer };
        let Ok(mut text) = serde_json::to_string(&line) else { continue };
        text.push('\n');
        if stream.write_all(text.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Connects to a served lab's socket and replays every record its
/// responders make from now on into the returned log, until the task ends
/// (the server goes away) or is aborted.
pub async fn mirror(path: &Path) -> io::Result<(PeerLog, JoinHandle<()>)> {
    let stream = UnixStream::connect(path).await?;
    let mut lines = BufReader::new(stream).lines();
    match lines.next_line().await? {
        Some(l) if l == READY => {}
        other => return Err(io::Error::other(format!("unexpected greeting from {}: {other:?}", path.display()))),
    }
    let log = PeerLog::default();
    let into = log.clone();
    let task = tokio::spawn(async move {
        while let Ok(Some(l)) = lines.next_line().await {
            let Ok(line) = serde_json::from_str::<Line>(&l) else { continue };
            let Ok(listen) = line.listen.parse() else { continue };
            into.record(line.token, SeenPeer { node: line.node, listen, peer: line.peer });
        }
    });
    Ok((log, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_mirror_sees_what_the_served_log_records_after_it_connected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.sock");
        let served = PeerLog::default();
        let server = serve(served.clone(), &path).unwrap();
        let seen = |node: &str| SeenPeer {
            node: node.into(),
            listen: "tcp:80".parse().unwrap(),
            peer: "198.51.100.2:20001".parse().unwrap(),
        };
        let (mirrored, task) = mirror(&path).await.unwrap();
        served.record(7, seen("web"));
        // A retry's record is not sent again.
        served.record(7, seen("web"));
        served.record(8, seen("api"));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while mirrored.get(8).is_none() && std::time::Instant::now() < deadline {
            tokio::task::yield_now().await;
        }
        assert_eq!(mirrored.all(7), vec![seen("web")]);
        assert_eq!(mirrored.get(8), Some(seen("api")));
        assert_eq!(mirrored.get(9), None);
        server.abort();
        task.abort();
    }
}
