//! `--pcap DIR`: a capture of the host's bridge and uplink for the whole
//! run, one classic pcap file per interface (Wireshark and tcpdump read it),
//! written by pcap-file with nanosecond timestamps.
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

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{DataLink, Endianness, TsResolution};
use pnet::datalink::{self, Channel, NetworkInterface};

use crate::apply::{netns, RunningLab};

/// Running captures; [`Capture::stop`] flushes and closes the files.
pub struct Capture {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<io::Result<()>>>,
    pub files: Vec<PathBuf>,
}

/// Frames longer than this are cut (tcpdump's default snap length; a
/// packet socket can hand up GRO-merged frames past 64 KiB).
pub const SNAPLEN: u32 = 262_144;

/// A pcap writer (pcap-file) with nanosecond timestamps and Ethernet frames.
pub fn pcap_writer<W: Write>(w: W) -> io::Result<PcapWriter<W>> {
    let header = PcapHeader {
        snaplen: SNAPLEN,
        datalink: DataLink::ETHERNET,
        ts_resolution: TsResolution::NanoSecond,
        endianness: Endianness::native(),
        ..PcapHeader::default()
    };
    PcapWriter::with_header(w, header).map_err(io::Error::other)
}

/// Writes one frame with its capture time, cut to [`SNAPLEN`].
pub fn write_frame<W: Write>(w: &mut PcapWriter<W>, at: SystemTime, frame: &[u8]) -> io::Result<()> {
    let t = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let kept = &frame[..frame.len().min(SNAPLEN as usize)];
    let orig_len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
    w.write_packet(&PcapPacket::new(t, orig_len, kept)).map(drop).map_err(io::Error::other)
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
            let file = File::create(&path).map_err(|e| crate::Error::apply(format!("create {}", path.display()), e))?;
            let mut out = pcap_writer(BufWriter::new(file))
                .map_err(|e| crate::Error::apply(format!("write {}", path.display()), e))?;
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
                out.into_writer().flush()
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
    use std::time::{Duration, UNIX_EPOCH};

    use pcap_file::pcap::PcapReader;
    use pcap_file::{DataLink, TsResolution};

    /// Read back by pcap-file's reader: Ethernet, nanosecond times kept to
    /// the nanosecond, and a frame past the snap length cut but with its
    /// real length.
    #[test]
    fn frames_read_back_with_their_times_and_lengths() {
        let mut w = super::pcap_writer(Vec::new()).unwrap();
        let at = UNIX_EPOCH + Duration::new(7, 5_123);
        super::write_frame(&mut w, at, &[1, 2, 3]).unwrap();
        let big = vec![9u8; super::SNAPLEN as usize + 10];
        super::write_frame(&mut w, at + Duration::from_nanos(1), &big).unwrap();
        let buf = w.into_writer();
        let mut r = PcapReader::new(&buf[..]).unwrap();
        let h = r.header();
        assert_eq!(
            (h.datalink, h.ts_resolution, h.snaplen),
            (DataLink::ETHERNET, TsResolution::NanoSecond, super::SNAPLEN)
        );
        let p = r.next_packet().unwrap().unwrap();
        assert_eq!((p.timestamp, p.orig_len, &p.data[..]), (Duration::new(7, 5_123), 3, &[1u8, 2, 3][..]));
        // pcap-file's parsed reader refuses orig_len > snaplen, which
        // libpcap, tcpdump and Wireshark accept (it is what a cut frame
        // is): read the cut frame raw.
        let p = r.next_raw_packet().unwrap().unwrap();
        assert_eq!((p.ts_sec, p.ts_frac), (7, 5_124));
        assert_eq!(
            (p.data.len(), p.incl_len, p.orig_len),
            (super::SNAPLEN as usize, super::SNAPLEN, super::SNAPLEN + 10)
        );
        assert!(r.next_raw_packet().is_none());
    }
}
