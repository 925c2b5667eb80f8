//! A few Redis commands over plain RESP, for the checks the queue API does not offer (key
//! counts, TTLs, a worker's name on a status hash). One connection per call, so a restarted
//! server is never a problem.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Nil,
    Status(String),
    Error(String),
    Int(i64),
    Bulk(String),
    Array(Vec<Reply>),
}

impl Reply {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Status(s) | Self::Bulk(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Self::Int(n) => Some(*n),
            Self::Bulk(s) | Self::Status(s) => s.parse().ok(),
            _ => None,
        }
    }

    pub fn items(&self) -> &[Reply] {
        match self {
            Self::Array(a) => a,
            _ => &[],
        }
    }

    /// Array of bulk strings as owned strings (nils skipped).
    pub fn strings(&self) -> Vec<String> {
        self.items()
            .iter()
            .filter_map(|r| r.as_str().map(str::to_owned))
            .collect()
    }
}

/// Runs one command on `127.0.0.1:port`; errors (I/O, timeout, Redis error replies) as text.
pub async fn cmd(port: u16, args: &[&str]) -> Result<Reply, String> {
    let mut replies = pipeline(port, &[args.iter().map(|a| (*a).to_owned()).collect()]).await?;
    match replies.pop() {
        Some(Reply::Error(e)) => Err(e),
        Some(other) => Ok(other),
        None => Err("no reply".into()),
    }
}

/// Sends several commands on one connection and reads their replies, in order (Redis error
/// replies stay in the list).
pub async fn pipeline(port: u16, cmds: &[Vec<String>]) -> Result<Vec<Reply>, String> {
    let fut = async {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let mut r = BufReader::new(stream);
        let mut out = Vec::new();
        for args in cmds {
            out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
            for a in args {
                out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                out.extend_from_slice(a.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
        r.get_mut()
            .write_all(&out)
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut replies = Vec::with_capacity(cmds.len());
        for _ in cmds {
            replies.push(read(&mut r).await.map_err(|e| format!("read: {e}"))?);
        }
        Ok(replies)
    };
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .map_err(|_| format!("{} commands: no answer within 10 s", cmds.len()))?
}

async fn line(r: &mut BufReader<TcpStream>) -> std::io::Result<String> {
    let mut s = String::new();
    let n = r.read_line(&mut s).await?;
    if n == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(s.trim_end_matches(['\r', '\n']).to_owned())
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

async fn read(r: &mut BufReader<TcpStream>) -> std::io::Result<Reply> {
    // Nested arrays recurse; box the future to give it a size.
    Box::pin(async move {
        let l = line(r).await?;
        let (kind, rest) = l.split_at(1.min(l.len()));
        Ok(match kind {
            "+" => Reply::Status(rest.to_owned()),
            "-" => Reply::Error(rest.to_owned()),
            ":" => Reply::Int(rest.parse().map_err(|_| bad("integer"))?),
            "$" => {
                let n: i64 = rest.parse().map_err(|_| bad("bulk length"))?;
                if n < 0 {
                    Reply::Nil
                } else {
                    let mut buf = vec![0u8; n as usize + 2];
                    r.read_exact(&mut buf).await?;
                    buf.truncate(n as usize);
                    Reply::Bulk(String::from_utf8_lossy(&buf).into_owned())
                }
            }
            "*" => {
                let n: i64 = rest.parse().map_err(|_| bad("array length"))?;
                if n < 0 {
                    Reply::Nil
                } else {
                    let mut items = Vec::with_capacity(n as usize);
                    for _ in 0..n {
                        items.push(read(r).await?);
                    }
                    Reply::Array(items)
                }
            }
            _ => return Err(bad("reply type")),
        })
    })
    .await
}
