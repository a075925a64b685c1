//! The `Date` header of every response, set here and sent never-indexed.
//!
//! hyper adds one to each response a server sends unless it has one, and h2's HPACK
//! encoder puts each new value in the connection's table: one a second. A connection that
//! lives for minutes fills its table with past dates, and h2 finds the current one by
//! comparing it with each of them, oldest first, on every response (4% of a leader's CPU
//! under load). A sensitive value is never put in the table, and costs some 30 bytes on
//! the wire.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use tonic::codegen::http::{HeaderValue, Response, header::DATE};

/// Sets the date on a response, unless it has one.
pub fn stamp<B>(mut response: Response<B>) -> Response<B> {
    if !response.headers().contains_key(DATE) {
        response.headers_mut().insert(DATE, now());
    }
    response
}

thread_local! {
    /// The current second's header value: formatted once a second, per thread.
    static CACHED: RefCell<(u64, HeaderValue)> =
        const { RefCell::new((0, HeaderValue::from_static(""))) };
}

fn now() -> HeaderValue {
    let time = SystemTime::now();
    let second = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHED.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != second || cached.1.is_empty() {
            let mut value = HeaderValue::from_str(&httpdate::fmt_http_date(time))
                .expect("an HTTP date is ASCII");
            value.set_sensitive(true);
            *cached = (second, value);
        }
        cached.1.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_gets_a_sensitive_date_and_keeps_one_it_has() {
        let stamped = stamp(Response::new(()));
        let date = stamped.headers().get(DATE).expect("a date");
        assert!(date.is_sensitive());
        assert!(httpdate::parse_http_date(date.to_str().unwrap()).is_ok());

        let mut own = Response::new(());
        own.headers_mut().insert(
            DATE,
            HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"),
        );
        let kept = stamp(own);
        assert_eq!(kept.headers()[DATE], "Thu, 01 Jan 1970 00:00:00 GMT");
    }
}
