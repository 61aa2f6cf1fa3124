//! A minimal HTTP/1.1 keep-alive client for one connection: writes a GET
//! (or a POST without a body), reads exactly one response (`Content-Length` framed, as every Spike and
//! nginx answer is), and pulls out what the report needs: the status, the
//! answer code, the order id, and the `X-Spike-Node` header.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What one response said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The JSON `code` (0 when absent).
    pub code: i64,
    /// The JSON `data.order_id`, if any.
    pub order: Option<String>,
    /// The `X-Spike-Node` header, if any.
    pub node: Option<String>,
}

/// One keep-alive connection.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
    request: Vec<u8>,
}

impl Connection {
    /// Connects to `address` (`host:port`).
    pub async fn open(address: &str) -> io::Result<Self> {
        let stream = TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buffer: Vec::with_capacity(4096),
            request: Vec::with_capacity(256),
        })
    }

    /// Sends `GET path_and_query` and reads the answer. After an error the
    /// connection must be dropped.
    pub async fn get(&mut self, host: &str, path_and_query: &str) -> io::Result<Answer> {
        self.send("GET", host, path_and_query).await?;
        self.read_answer(|_| ()).await.map(|(answer, ())| answer)
    }

    /// Sends `method path_and_query` (no body) and reads the answer, with
    /// its body passed to `read` (which keeps what it needs).
    pub async fn exchange<T>(
        &mut self,
        method: &str,
        host: &str,
        path_and_query: &str,
        read: impl FnOnce(&[u8]) -> T,
    ) -> io::Result<(Answer, T)> {
        self.send(method, host, path_and_query).await?;
        self.read_answer(read).await
    }

    async fn send(&mut self, method: &str, host: &str, path_and_query: &str) -> io::Result<()> {
        self.request.clear();
        self.request.extend_from_slice(method.as_bytes());
        self.request.push(b' ');
        self.request.extend_from_slice(path_and_query.as_bytes());
        self.request.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        self.request.extend_from_slice(host.as_bytes());
        if method == "POST" {
            self.request.extend_from_slice(b"\r\nContent-Length: 0");
        }
        self.request.extend_from_slice(b"\r\n\r\n");
        self.stream.write_all(&self.request).await
    }

    async fn read_answer<T>(&mut self, read: impl FnOnce(&[u8]) -> T) -> io::Result<(Answer, T)> {
        loop {
            if let Some((answer, body, used)) = parse_with_body(&self.buffer)? {
                let kept = read(&self.buffer[body..used]);
                self.buffer.drain(..used);
                return Ok((answer, kept));
            }
            let mut chunk = [0u8; 4096];
            let read = self.stream.read(&mut chunk).await?;
            if read == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed",
                ));
            }
            self.buffer.extend_from_slice(&chunk[..read]);
        }
    }
}

/// Parses one complete response from the front of `bytes`, returning it and
/// how many bytes it used, or `None` if more bytes are needed.
pub fn parse(bytes: &[u8]) -> io::Result<Option<(Answer, usize)>> {
    Ok(parse_with_body(bytes)?.map(|(answer, _, used)| (answer, used)))
}

/// [`parse`], also saying where the body starts.
fn parse_with_body(bytes: &[u8]) -> io::Result<Option<(Answer, usize, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head = match response.parse(bytes) {
        Ok(httparse::Status::Complete(head)) => head,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(error) => return Err(io::Error::new(io::ErrorKind::InvalidData, error)),
    };
    let mut length = None;
    let mut node = None;
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            length = std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok());
        } else if header.name.eq_ignore_ascii_case("x-spike-node") {
            node = Some(String::from_utf8_lossy(header.value).into_owned());
        }
    }
    let length = length.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "response without Content-Length",
        )
    })?;
    if bytes.len() < head + length {
        return Ok(None);
    }
    let body = &bytes[head..head + length];
    let answer = Answer {
        status: response.code.unwrap_or(0),
        code: json_integer(body, b"\"code\":").unwrap_or(0),
        order: json_string(body, b"\"order_id\":\""),
        node,
    };
    Ok(Some((answer, head, head + length)))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn json_integer(body: &[u8], key: &[u8]) -> Option<i64> {
    let start = find(body, key)? + key.len();
    let rest = &body[start..];
    let end = rest
        .iter()
        .position(|b| !(b.is_ascii_digit() || *b == b'-'))
        .unwrap_or(rest.len());
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

fn json_string(body: &[u8], key: &[u8]) -> Option<String> {
    let start = find(body, key)? + key.len();
    let rest = &body[start..];
    let end = rest.iter().position(|b| *b == b'"')?;
    Some(String::from_utf8_lossy(&rest[..end]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_spike_answer_and_leaves_the_rest() {
        let body = r#"{"code":1,"msg":"success","data":{"order_id":"G1-7","event":"G1"}}"#;
        let mut bytes = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-spike-node: n3\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes();
        bytes.extend_from_slice(b"HTTP/1.1 200");
        let (answer, used) = parse(&bytes).unwrap().unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.code, 1);
        assert_eq!(answer.order.as_deref(), Some("G1-7"));
        assert_eq!(answer.node.as_deref(), Some("n3"));
        assert_eq!(&bytes[used..], b"HTTP/1.1 200");
    }

    #[test]
    fn waits_for_the_whole_body() {
        let bytes = b"HTTP/1.1 200 OK\r\ncontent-length: 28\r\n\r\n{\"code\":-1,";
        assert!(parse(bytes).unwrap().is_none());
        let bytes = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 10\r\n\r\n{\"code\":-5";
        let (answer, _) = parse(bytes).unwrap().unwrap();
        assert_eq!((answer.status, answer.code, answer.order), (503, -5, None));
    }
}
