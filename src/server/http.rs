//! The node's port: HTTP/2 connections served by hyper, every request routed by its path.
//!
//! `Send`, the call a busy chat makes most, is answered here from its bytes: the request's
//! one message decoded, the chat service's own `send` called, the reply framed with its
//! trailers. Every other call goes to tonic's services (chat, admin, peer, health,
//! reflection). Under load a leader's thread is what bounds a cluster's writes, and
//! tonic's router and codec around each call were a tenth of that thread's time.
//!
//! What tonic's server did besides routing is done here too: no Nagle's delay on accepted
//! connections, a `grpc-timeout` sent by a client honoured, the `Date` of every response
//! (see `http_date`), and a graceful shutdown (no new connections; open ones are asked to
//! finish their calls and close).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Request, Response};
use http_body::Frame;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use prost::Message as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::Status;
use tonic::body::Body;
use tonic::service::Routes;
use tower::Service as _;
use tracing::{debug, warn};

use super::chat_service::ChatService;
use super::http_date;
use crate::proto::chat::chat_server::Chat;

/// The path of the call answered here.
const SEND: &str = "/raftchat.chat.Chat/Send";
/// The largest request message taken, as tonic's default.
const MAX_MESSAGE: usize = 4 << 20;

/// Routes each request: `Send` here, the rest to tonic.
#[derive(Clone)]
pub struct NodeService {
    pub chat: Arc<ChatService>,
    pub routes: Routes,
}

type Answer = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for NodeService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Answer;

    fn call(&self, request: Request<Incoming>) -> Answer {
        let deadline = match grpc_timeout(request.headers()) {
            Ok(deadline) => deadline,
            Err(status) => return Box::pin(async move { Ok(refused(status)) }),
        };
        if request.uri().path() == SEND {
            let chat = self.chat.clone();
            let answer = async move { reply(send(&chat, request).await) };
            return Box::pin(within(deadline, answer));
        }
        let mut routes = self.routes.clone();
        let answer = async move {
            match routes.call(request.map(Body::new)).await {
                Ok(response) => http_date::stamp(response),
                Err(never) => match never {},
            }
        };
        Box::pin(within(deadline, answer))
    }
}

/// The answer, or CANCELLED once the client's deadline has passed (as tonic answers).
async fn within(
    deadline: Option<Duration>,
    answer: impl Future<Output = Response<Body>>,
) -> Result<Response<Body>, Infallible> {
    let Some(deadline) = deadline else {
        return Ok(answer.await);
    };
    match tokio::time::timeout(deadline, answer).await {
        Ok(response) => Ok(response),
        Err(_) => Ok(refused(Status::cancelled("Timeout expired"))),
    }
}

/// A `grpc-timeout` header: digits and a unit.
fn grpc_timeout(headers: &HeaderMap) -> Result<Option<Duration>, Status> {
    let Some(value) = headers.get("grpc-timeout") else {
        return Ok(None);
    };
    let bad = || Status::invalid_argument(format!("grpc-timeout: cannot read {value:?}"));
    let text = value.to_str().map_err(|_| bad())?;
    if text.len() < 2 || text.len() > 9 {
        return Err(bad());
    }
    let (digits, unit) = text.split_at(text.len() - 1);
    let n: u64 = digits.parse().map_err(|_| bad())?;
    Ok(Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return Err(bad()),
    }))
}

async fn send(
    chat: &ChatService,
    request: Request<Incoming>,
) -> Result<tonic::Response<crate::proto::chat::SendReply>, Status> {
    let (parts, body) = request.into_parts();
    let message = one_message(body).await?;
    let message = crate::proto::chat::SendRequest::decode(message)
        .map_err(|e| Status::internal(format!("failed to decode Protobuf message: {e}")))?;
    let request = tonic::Request::from_parts(
        tonic::metadata::MetadataMap::from_headers(parts.headers),
        parts.extensions,
        message,
    );
    chat.send(request).await
}

/// The one message of a unary call's body, without its 5-byte gRPC prefix.
async fn one_message<B>(body: B) -> Result<Bytes, Status>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    let mut body = std::pin::pin!(body);
    let mut data = BytesMut::new();
    while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        let frame = frame.map_err(|e| Status::internal(format!("reading the request: {e}")))?;
        if let Ok(chunk) = frame.into_data() {
            data.extend_from_slice(&chunk);
            if data.len() > MAX_MESSAGE + 5 {
                return Err(too_large(data.len() - 5));
            }
        }
    }
    if data.is_empty() {
        return Err(Status::internal("Missing request message."));
    }
    if data.len() < 5 {
        return Err(Status::internal(
            "the request ends inside its message's prefix",
        ));
    }
    let compressed = data.get_u8();
    let len = data.get_u32() as usize;
    if compressed != 0 {
        return Err(Status::unimplemented(
            "Message compressed, compression support not enabled.",
        ));
    }
    if len > MAX_MESSAGE {
        return Err(too_large(len));
    }
    if data.len() != len {
        return Err(Status::internal(format!(
            "the request's message is {} bytes, its prefix says {len}",
            data.len()
        )));
    }
    Ok(data.freeze())
}

fn too_large(len: usize) -> Status {
    Status::out_of_range(format!(
        "Error, decoded message length too large: found {len} bytes, the limit is: {MAX_MESSAGE} bytes"
    ))
}

/// A unary call's response: headers with the reply's metadata, its one message, and the
/// trailers that say OK; or, for an error, the status in the headers alone.
fn reply<M: prost::Message>(result: Result<tonic::Response<M>, Status>) -> Response<Body> {
    let response = match result {
        Err(status) => return refused(status),
        Ok(response) => {
            let (metadata, message, _) = response.into_parts();
            let len = message.encoded_len();
            let mut data = BytesMut::with_capacity(5 + len);
            data.put_u8(0);
            data.put_u32(len as u32);
            message
                .encode(&mut data)
                .expect("the buffer was sized for the message");
            let mut response = Response::new(Body::new(Unary {
                data: Some(data.freeze()),
                done: false,
            }));
            *response.headers_mut() = metadata.into_headers();
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
            response
        }
    };
    http_date::stamp(response)
}

/// A call's error: the status in the response's headers, and no body.
fn refused(status: Status) -> Response<Body> {
    http_date::stamp(status.into_http())
}

/// One message, then the trailers of a call that succeeded.
struct Unary {
    data: Option<Bytes>,
    done: bool,
}

impl http_body::Body for Unary {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if self.done {
            return Poll::Ready(None);
        }
        self.done = true;
        let mut trailers = HeaderMap::with_capacity(1);
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

/// Serves connections from `listener` until `stop` resolves; then stops accepting, asks
/// every open connection to finish its calls and close, and returns once they have.
pub async fn serve(listener: TcpListener, service: NodeService, stop: impl Future<Output = ()>) {
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(None);
    let (closing, closing_seen) = watch::channel(false);
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // Out of file descriptors, most likely: give the open ones time to close.
                warn!("cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // A reply of a few segments would otherwise wait out the client's delayed ACK.
        let _ = tcp.set_nodelay(true);
        let connection = builder.serve_connection(TokioIo::new(tcp), service.clone());
        let mut closing = closing_seen.clone();
        tokio::spawn(async move {
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        debug!("connection ended: {e}");
                    }
                    return;
                }
                _ = closing.changed() => connection.as_mut().graceful_shutdown(),
            }
            let _ = connection.await;
        });
    }
    drop(listener);
    drop(closing_seen);
    let _ = closing.send(true);
    closing.closed().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;

    /// A request body arriving in the given chunks.
    struct Chunks(Vec<Bytes>);

    impl http_body::Body for Chunks {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            if self.0.is_empty() {
                return Poll::Ready(None);
            }
            Poll::Ready(Some(Ok(Frame::data(self.0.remove(0)))))
        }
    }

    fn framed(flag: u8, declared: u32, message: &[u8]) -> Bytes {
        let mut b = vec![flag];
        b.extend_from_slice(&declared.to_be_bytes());
        b.extend_from_slice(message);
        Bytes::from(b)
    }

    async fn read(chunks: Vec<Bytes>) -> Result<Bytes, String> {
        one_message(Chunks(chunks))
            .await
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
    }

    #[tokio::test]
    async fn a_message_is_read_whole_across_chunks() {
        let whole = framed(0, 5, b"hello");
        let (a, b) = (whole.slice(..3), whole.slice(3..));
        assert_eq!(
            read(vec![a, b]).await.unwrap(),
            Bytes::from_static(b"hello")
        );
        assert_eq!(read(vec![framed(0, 0, b"")]).await.unwrap(), Bytes::new());
    }

    #[tokio::test]
    async fn a_malformed_body_is_refused_with_what_was_wrong() {
        let cases = [
            (vec![], "Internal: Missing request message."),
            (
                vec![Bytes::from_static(&[0, 0, 0])],
                "Internal: the request ends inside its message's prefix",
            ),
            (
                vec![framed(1, 2, b"hi")],
                "Unimplemented: Message compressed, compression support not enabled.",
            ),
            (
                vec![framed(0, 9, b"hi")],
                "Internal: the request's message is 2 bytes, its prefix says 9",
            ),
            (
                vec![framed(0, 5 << 20, b"")],
                "OutOfRange: Error, decoded message length too large: found 5242880 bytes, \
                 the limit is: 4194304 bytes",
            ),
        ];
        for (chunks, want) in cases {
            assert_eq!(read(chunks).await.unwrap_err(), want);
        }
    }

    #[test]
    fn a_grpc_timeout_is_read_in_its_unit_and_a_bad_one_is_refused() {
        let parse = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("grpc-timeout", HeaderValue::from_str(v).unwrap());
            grpc_timeout(&h)
        };
        assert_eq!(parse("250m").unwrap(), Some(Duration::from_millis(250)));
        assert_eq!(parse("3S").unwrap(), Some(Duration::from_secs(3)));
        assert_eq!(parse("2H").unwrap(), Some(Duration::from_secs(7200)));
        assert_eq!(
            parse("99999999n").unwrap(),
            Some(Duration::from_nanos(99_999_999))
        );
        for bad in ["", "m", "10", "10x", "-1S", "123456789S"] {
            let err = parse(bad).unwrap_err();
            assert_eq!(err.code(), tonic::Code::InvalidArgument, "{bad:?}");
            assert!(err.message().starts_with("grpc-timeout: "), "{bad:?}");
        }
        assert_eq!(grpc_timeout(&HeaderMap::new()).unwrap(), None);
    }

    #[tokio::test]
    async fn a_reply_is_its_metadata_one_framed_message_then_ok_trailers() {
        let mut response =
            tonic::Response::new(crate::proto::chat::SendReply { id: 7, time_ms: 9 });
        response
            .metadata_mut()
            .insert("x-index", "7".parse().unwrap());
        let response = reply(Ok(response));
        assert_eq!(response.headers()["content-type"], "application/grpc");
        assert_eq!(response.headers()["x-index"], "7");
        assert!(response.headers().contains_key("date"));
        let mut body = std::pin::pin!(response.into_body());
        let mut frames = Vec::new();
        while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
            frames.push(frame.unwrap());
        }
        assert_eq!(frames.len(), 2);
        let data = frames[0].data_ref().unwrap().clone();
        let message = one_message(Chunks(vec![data])).await.unwrap();
        let decoded = crate::proto::chat::SendReply::decode(message).unwrap();
        assert_eq!((decoded.id, decoded.time_ms), (7, 9));
        assert_eq!(frames[1].trailers_ref().unwrap()["grpc-status"], "0");
        // An error is the status in the headers alone.
        let refused = reply::<crate::proto::chat::SendReply>(Err(Status::not_found("to: no user")));
        assert_eq!(refused.headers()["grpc-status"], "5");
        assert_eq!(refused.headers()["grpc-message"], "to:%20no%20user");
    }
}
