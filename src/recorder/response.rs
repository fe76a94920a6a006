//! RTSP/1.0 responses (RFC 2326 §7).

use std::fmt::Write;

/// Status codes camgate sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    /// RFC 2326 §11.3.5: refused for lack of resources; camgate's answer
    /// to a SETUP past a session cap.
    NotEnoughBandwidth,
    SessionNotFound,
    MethodNotValidInThisState,
    AggregateOperationNotAllowed,
    UnsupportedTransport,
    InternalServerError,
    ServiceUnavailable,
}

impl Status {
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::BadRequest => 400,
            Status::Unauthorized => 401,
            Status::Forbidden => 403,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::NotEnoughBandwidth => 453,
            Status::SessionNotFound => 454,
            Status::MethodNotValidInThisState => 455,
            Status::AggregateOperationNotAllowed => 459,
            Status::UnsupportedTransport => 461,
            Status::InternalServerError => 500,
            Status::ServiceUnavailable => 503,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::BadRequest => "Bad Request",
            Status::Unauthorized => "Unauthorized",
            Status::Forbidden => "Forbidden",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::NotEnoughBandwidth => "Not Enough Bandwidth",
            Status::SessionNotFound => "Session Not Found",
            Status::MethodNotValidInThisState => "Method Not Valid in This State",
            Status::AggregateOperationNotAllowed => "Aggregate Operation Not Allowed",
            Status::UnsupportedTransport => "Unsupported Transport",
            Status::InternalServerError => "Internal Server Error",
            Status::ServiceUnavailable => "Service Unavailable",
        }
    }
}

/// A response under construction.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: Status,
    headers: Vec<(&'static str, String)>,
    body: Option<(&'static str, String)>,
}

impl Response {
    pub fn new(status: Status) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn body(mut self, content_type: &'static str, body: String) -> Self {
        self.body = Some((content_type, body));
        self
    }

    /// Serializes with the request's CSeq (omitted when the request had none).
    pub fn to_bytes(&self, cseq: Option<&str>) -> bytes::Bytes {
        let mut s = String::with_capacity(256);
        let _ = write!(
            s,
            "RTSP/1.0 {} {}\r\n",
            self.status.code(),
            self.status.reason()
        );
        if let Some(c) = cseq {
            let _ = write!(s, "CSeq: {c}\r\n");
        }
        s.push_str("Server: camgate\r\n");
        for (k, v) in &self.headers {
            // Values are built by camgate; strip line breaks regardless.
            let v: String = v.chars().filter(|c| *c != '\r' && *c != '\n').collect();
            let _ = write!(s, "{k}: {v}\r\n");
        }
        match &self.body {
            Some((ct, body)) => {
                let _ = write!(
                    s,
                    "Content-Type: {ct}\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
            }
            None => s.push_str("\r\n"),
        }
        bytes::Bytes::from(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes() {
        let r = Response::new(Status::Ok)
            .header("Session", "abc;timeout=60")
            .body("application/sdp", "v=0\r\n".into());
        let b = r.to_bytes(Some("3"));
        assert_eq!(
            &b[..],
            b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nServer: camgate\r\nSession: abc;timeout=60\r\nContent-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n"
        );
        let b = Response::new(Status::SessionNotFound)
            .header("X", "a\r\nInjected: 1")
            .to_bytes(None);
        assert_eq!(
            &b[..],
            b"RTSP/1.0 454 Session Not Found\r\nServer: camgate\r\nX: aInjected: 1\r\n\r\n"
        );
    }
}
