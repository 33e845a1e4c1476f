//! `--pcap DIR`: a capture of the host's bridge and uplink for the whole
//! run, one classic pcap file per interface (Wireshark and tcpdump read it).
//!
//! The capture is a middleware beside the lab, as in smoltcp's pcap writer:
//! it watches, it never changes a packet. Packet sockets (pnet datalink)
//! are opened inside the host namespace and read on their own threads
//! until the capture is stopped.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pnet::datalink::{self, Channel, NetworkInterface};

use crate::apply::{netns, RunningLab};

/// Running captures; [`Capture::stop`] flushes and closes the files.
pub struct Capture {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<io::Result<()>>>,
    pub files: Vec<PathBuf>,
}

/// Writes the classic pcap file header (microseconds, Ethernet).
pub fn write_header(w: &mut impl Write) -> io::Result<()> {
    w.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
    w.write_all(&2u16.to_le_bytes())?;
    w.write_all(&4u16.to_le_bytes())?;
    w.write_all(&0i32.to_le_bytes())?; // thiszone
    w.write_all(&0u32.to_le_bytes())?; // sigfigs
    w.write_all(&65535u32.to_le_bytes())?; // snaplen
    w.write_all(&1u32.to_le_bytes()) // LINKTYPE_ETHERNET
}

/// Writes one frame with its capture time.
pub fn write_frame(w: &mut impl Write, at: SystemTime, frame: &[u8]) -> io::Result<()> {
    let t = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    w.write_all(&(t.as_secs() as u32).to_le_bytes())?;
    w.write_all(&t.subsec_micros().to_le_bytes())?;
    let len = frame.len().min(65535) as u32;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(&(frame.len() as u32).to_le_bytes())?;
    w.write_all(&frame[..len as usize])
}

impl Capture {
    /// Starts capturing on the host's daemon bridge (if any) and uplink.
    pub async fn start(lab: &RunningLab, dir: &Path) -> crate::Result<Capture> {
        std::fs::create_dir_all(dir).map_err(|e| crate::Error::apply(format!("create {}", dir.display()), e))?;
        let host = lab.netns_file("host").ok_or_else(|| crate::Error::Environment("no host namespace".into()))?;
        let nl = lab.netlink("host").ok_or_else(|| crate::Error::Environment("no host netlink".into()))?;
        let mut ifaces = vec!["eth0".to_string()];
        if let Some(b) = &lab.plan().bridge {
            ifaces.insert(0, b.name.clone());
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut cap = Capture { stop: stop.clone(), threads: vec![], files: vec![] };
        for name in ifaces {
            let index = nl.index(&name).await.map_err(|e| crate::Error::apply(format!("host: find {name}"), e))?;
            let iface = NetworkInterface {
                name: name.clone(),
                description: String::new(),
                index,
                mac: None,
                ips: vec![],
                flags: 0,
            };
            let config = datalink::Config { read_timeout: Some(Duration::from_millis(50)), ..Default::default() };
            // The packet socket belongs to the namespace it is opened in.
            let rx = netns::run_in(host, move || match datalink::channel(&iface, config)? {
                Channel::Ethernet(_, rx) => Ok(rx),
                _ => Err(io::Error::other("not an Ethernet channel")),
            })
            .map_err(|e| crate::Error::apply(format!("host: capture on {name}"), e))?;
            let path = dir.join(format!("{}-{name}.pcap", lab.plan().scenario));
            let mut out = BufWriter::new(
                File::create(&path).map_err(|e| crate::Error::apply(format!("create {}", path.display()), e))?,
            );
            write_header(&mut out).map_err(|e| crate::Error::apply(format!("write {}", path.display()), e))?;
            let stop = stop.clone();
            let mut rx = rx;
            cap.threads.push(std::thread::spawn(move || {
                // Stop only once the socket is drained (a read timed out):
                // on a loaded machine this thread may run late, and the
                // frames queued on its socket belong to the capture.
                loop {
                    match rx.next() {
                        Ok(frame) => write_frame(&mut out, SystemTime::now(), frame)?,
                        Err(e) if matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) => {
                            if stop.load(Ordering::Relaxed) {
                                break;
                            }
                        }
                        Err(e) => return Err(e),
                    }
                }
                out.flush()
            }));
            cap.files.push(path);
        }
        Ok(cap)
    }

    /// Stops the capture threads and closes the files.
    pub fn stop(mut self) -> io::Result<Vec<PathBuf>> {
        self.stop.store(true, Ordering::Relaxed);
        for t in std::mem::take(&mut self.threads) {
            t.join().map_err(|_| io::Error::other("capture thread panicked"))??;
        }
        Ok(std::mem::take(&mut self.files))
    }
}

impl Drop for Capture {
    /// A capture dropped on an error path still ends its threads (and with
    /// them the packet sockets that hold the host namespace).
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in std::mem::take(&mut self.threads) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn pcap_layout_is_the_classic_one() {
        let mut buf = Vec::new();
        super::write_header(&mut buf).unwrap();
        assert_eq!(buf.len(), 24);
        assert_eq!(&buf[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        let at = std::time::UNIX_EPOCH + std::time::Duration::new(7, 5_000);
        super::write_frame(&mut buf, at, &[1, 2, 3]).unwrap();
        assert_eq!(&buf[24..], &[7, 0, 0, 0, 5, 0, 0, 0, 3, 0, 0, 0, 3, 0, 0, 0, 1, 2, 3]);
    }
}
