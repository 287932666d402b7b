//! Reading an upstream's HTTP/1.1 answer: the head, and how its body is
//! framed (RFC 9112 §6.3), without any I/O.
//!
//! [`parse_head`] turns the bytes of a response head into the few facts
//! the proxy needs (status, content type, framing, whether the connection
//! can be reused); [`Chunked`] decodes a chunked body as its bytes arrive.
//! Both are fed from the connection's read buffer by
//! [`super::exchange`], and both refuse what a node should never send
//! rather than guess.

use bytes::{Buf as _, BytesMut};
use http::{HeaderValue, StatusCode};

/// Most header lines read in one head.
const MAX_HEADERS: usize = 64;
/// Longest head accepted.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Longest chunk-size line (with extensions) or trailer section.
const MAX_CHUNK_LINE: usize = 4 * 1024;

/// An answer that is not HTTP/1.1 as the proxy accepts it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("malformed response head: {0}")]
    Head(httparse::Error),
    #[error("response head over {MAX_HEAD_BYTES} bytes")]
    HeadTooLarge,
    #[error("bad content-length {0:?}")]
    ContentLength(String),
    #[error("malformed chunked body: {0}")]
    Chunk(&'static str),
    #[error("unexpected HTTP {0}")]
    Status(u16),
}

/// How the body after a head ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (204, 304).
    Empty,
    /// Exactly this many bytes.
    Length(usize),
    /// `transfer-encoding: chunked`.
    Chunked,
    /// Until the upstream closes the connection.
    UntilClose,
}

/// What the proxy keeps of a response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: StatusCode,
    pub content_type: Option<HeaderValue>,
    pub framing: Framing,
    /// HTTP/1.1 without `connection: close`: the connection may carry the
    /// next request once this body is read.
    pub keep_alive: bool,
}

/// Parses a response head at the start of `buf`: `Ok(None)` when more
/// bytes are needed, else the head and its length in bytes. Interim (1xx)
/// heads are reported as such; the caller skips them.
pub fn parse_head(buf: &[u8]) -> Result<Option<(usize, Head)>, ProtocolError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_BYTES => {
            return Err(ProtocolError::HeadTooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(ProtocolError::Head(e)),
    };
    let code = response.code.unwrap_or(0);
    let status = StatusCode::from_u16(code).map_err(|_| ProtocolError::Status(code))?;
    if code == 101 {
        return Err(ProtocolError::Status(code));
    }
    let mut content_type = None;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut transfer_encoding = false;
    let mut close = response.version != Some(1);
    for h in response.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n = parse_length(h.value)?;
            if length.is_some_and(|l| l != n) {
                return Err(ProtocolError::ContentLength(lossy(h.value)));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            // Only the last coding frames the message.
            chunked = last_token(h.value).is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case("connection") {
            close |= tokens(h.value).any(|t| t.eq_ignore_ascii_case(b"close"));
        } else if name.eq_ignore_ascii_case("content-type") {
            // The common value without a copy (one allocation per answer).
            content_type = if h.value.eq_ignore_ascii_case(b"application/json") {
                Some(HeaderValue::from_static("application/json"))
            } else {
                HeaderValue::from_bytes(h.value).ok()
            };
        }
    }
    let framing = if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        Framing::Empty
    } else if transfer_encoding {
        // A transfer coding overrides any content-length (RFC 9112 §6.3).
        if chunked {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else {
        length.map_or(Framing::UntilClose, Framing::Length)
    };
    let keep_alive =
        !close && framing != Framing::UntilClose && !(transfer_encoding && length.is_some());
    Ok(Some((
        len,
        Head {
            status,
            content_type,
            framing,
            keep_alive,
        },
    )))
}

fn parse_length(value: &[u8]) -> Result<usize, ProtocolError> {
    let digits = value.trim_ascii();
    if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(ProtocolError::ContentLength(lossy(value)));
    }
    Ok(digits
        .iter()
        .fold(0usize, |n, d| n * 10 + usize::from(d - b'0')))
}

fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

fn last_token(value: &[u8]) -> Option<&[u8]> {
    tokens(value).last()
}

fn lossy(value: &[u8]) -> String {
    String::from_utf8_lossy(value).into_owned()
}

/// Where a chunked body's decoding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk's data, this many bytes to go.
    Data(usize),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one.
    Trailers,
    Done,
}

/// Decodes a chunked body from the front of a read buffer.
#[derive(Debug)]
pub struct Chunked {
    state: ChunkState,
    body: BytesMut,
    trailer_bytes: usize,
}

/// Decoding a chunked body failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChunkedError {
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error("body over {0} bytes")]
    TooLarge(usize),
}

impl Default for Chunked {
    fn default() -> Self {
        Self {
            state: ChunkState::Size,
            body: BytesMut::new(),
            trailer_bytes: 0,
        }
    }
}

impl Chunked {
    /// Consumes what it can of `buf`; `Ok(true)` once the body is complete
    /// (what follows it stays in `buf`). The decoded body is capped at `max`.
    pub fn decode(&mut self, buf: &mut BytesMut, max: usize) -> Result<bool, ChunkedError> {
        loop {
            match self.state {
                ChunkState::Size => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(false);
                    };
                    let size = chunk_size(&line)?;
                    self.state = if size == 0 {
                        ChunkState::Trailers
                    } else {
                        if self.body.len().saturating_add(size) > max {
                            return Err(ChunkedError::TooLarge(max));
                        }
                        self.body.reserve(size);
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(left) => {
                    if buf.is_empty() {
                        return Ok(false);
                    }
                    let take = left.min(buf.len());
                    self.body.extend_from_slice(&buf[..take]);
                    buf.advance(take);
                    self.state = if take == left {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left - take)
                    };
                }
                ChunkState::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(false);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(ProtocolError::Chunk("no CRLF after chunk data").into());
                    }
                    buf.advance(2);
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailers => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(false);
                    };
                    self.trailer_bytes += line.len() + 2;
                    if self.trailer_bytes > MAX_CHUNK_LINE {
                        return Err(ProtocolError::Chunk("trailers too long").into());
                    }
                    if line.is_empty() {
                        self.state = ChunkState::Done;
                    }
                }
                ChunkState::Done => return Ok(true),
            }
        }
    }

    /// The decoded body.
    pub fn into_body(self) -> BytesMut {
        self.body
    }
}

/// Takes one CRLF-terminated line off the front of `buf` (without the CRLF).
fn take_line(buf: &mut BytesMut) -> Result<Option<BytesMut>, ProtocolError> {
    match buf.windows(2).position(|w| w == b"\r\n") {
        Some(end) if end > MAX_CHUNK_LINE => Err(ProtocolError::Chunk("line too long")),
        Some(end) => {
            let line = buf.split_to(end);
            buf.advance(2);
            Ok(Some(line))
        }
        None if buf.len() > MAX_CHUNK_LINE => Err(ProtocolError::Chunk("line too long")),
        None => Ok(None),
    }
}

/// The size of a chunk-size line (hex, extensions after `;` ignored).
fn chunk_size(line: &[u8]) -> Result<usize, ProtocolError> {
    let hex = line
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if hex.is_empty() || hex.len() > 15 {
        return Err(ProtocolError::Chunk("bad chunk size"));
    }
    hex.iter().try_fold(0usize, |n, &d| {
        let digit = (d as char)
            .to_digit(16)
            .ok_or(ProtocolError::Chunk("bad chunk size"))?;
        Ok(n * 16 + digit as usize)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Head {
        parse_head(text.as_bytes()).unwrap().unwrap().1
    }

    #[test]
    fn reads_a_keep_alive_json_answer() {
        let text =
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 42\r\n\r\n{";
        let (len, h) = parse_head(text.as_bytes()).unwrap().unwrap();
        assert_eq!(len, text.len() - 1);
        assert_eq!(h.status, StatusCode::OK);
        assert_eq!(h.content_type.unwrap(), "application/json");
        assert_eq!(h.framing, Framing::Length(42));
        assert!(h.keep_alive);
    }

    #[test]
    fn asks_for_more_until_the_head_is_whole() {
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Le").unwrap(), None);
        let huge = format!("HTTP/1.1 200 OK\r\nx: {}", "a".repeat(MAX_HEAD_BYTES));
        assert_eq!(
            parse_head(huge.as_bytes()),
            Err(ProtocolError::HeadTooLarge)
        );
    }

    #[test]
    fn frames_bodies_as_rfc_9112_says() {
        let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
        assert_eq!(head(chunked).framing, Framing::Chunked);
        assert!(head(chunked).keep_alive);
        let no_length = "HTTP/1.1 200 OK\r\n\r\n";
        assert_eq!(head(no_length).framing, Framing::UntilClose);
        assert!(!head(no_length).keep_alive);
        assert_eq!(
            head("HTTP/1.1 204 No Content\r\n\r\n").framing,
            Framing::Empty
        );
        assert_eq!(
            head("HTTP/1.1 100 Continue\r\n\r\n").framing,
            Framing::Empty
        );
        let both = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(head(both).framing, Framing::Chunked);
        assert!(
            !head(both).keep_alive,
            "smuggling-shaped answers are not reused"
        );
    }

    #[test]
    fn honours_connection_close_and_http_1_0() {
        let close = "HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n";
        assert!(!head(close).keep_alive);
        let old = "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert!(!head(old).keep_alive);
    }

    #[test]
    fn refuses_bad_lengths_and_upgrades() {
        for bad in ["-1", "1e3", "", "99999999999999999999"] {
            let text = format!("HTTP/1.1 200 OK\r\nContent-Length: {bad}\r\n\r\n");
            assert!(matches!(
                parse_head(text.as_bytes()),
                Err(ProtocolError::ContentLength(_))
            ));
        }
        let twice = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        assert!(parse_head(twice.as_bytes()).is_err());
        let same = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(head(same).framing, Framing::Length(2));
        let upgrade = "HTTP/1.1 101 Switching Protocols\r\n\r\n";
        assert_eq!(
            parse_head(upgrade.as_bytes()),
            Err(ProtocolError::Status(101))
        );
        assert!(matches!(
            parse_head(b"<html>hello</html>\r\n\r\n"),
            Err(ProtocolError::Head(_))
        ));
    }

    #[test]
    fn decodes_chunks_split_anywhere() {
        let wire = b"4;ext=1\r\n{\"a\"\r\nA\r\n:12345678}\r\n0\r\nx-trailer: y\r\n\r\nNEXT";
        for split in 0..wire.len() {
            let mut decoder = Chunked::default();
            let mut buf = BytesMut::from(&wire[..split]);
            let done = decoder.decode(&mut buf, 1024).unwrap();
            assert!(
                !done || split >= wire.len() - b"NEXT".len(),
                "split at {split}"
            );
            buf.extend_from_slice(&wire[split..]);
            assert!(decoder.decode(&mut buf, 1024).unwrap(), "split at {split}");
            assert_eq!(&buf[..], b"NEXT");
            assert_eq!(&decoder.into_body()[..], b"{\"a\":12345678}");
        }
    }

    #[test]
    fn refuses_broken_or_oversized_chunks() {
        let mut buf = BytesMut::from(&b"zz\r\n"[..]);
        assert!(Chunked::default().decode(&mut buf, 10).is_err());
        let mut buf = BytesMut::from(&b"3\r\nabcX\r\n"[..]);
        assert!(Chunked::default().decode(&mut buf, 10).is_err());
        let mut buf = BytesMut::from(&b"b\r\n"[..]);
        assert_eq!(
            Chunked::default().decode(&mut buf, 10),
            Err(ChunkedError::TooLarge(10))
        );
        let mut buf = BytesMut::from(vec![b'1'; MAX_CHUNK_LINE + 1].as_slice());
        assert!(Chunked::default().decode(&mut buf, 10).is_err());
    }
}
