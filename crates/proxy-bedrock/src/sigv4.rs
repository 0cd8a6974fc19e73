//! SigV4 for the requests this crate sends, without the general signer's per-call work.
//!
//! `aws-sigv4` handles every shape of request and pays for it on each call: the four HMACs of the
//! signing key, a header map rebuilt and formatted through `Display`, several owned strings. The
//! gateway's requests are one shape (a POST to a plain path, no query, a handful of unique headers)
//! and sign tens of thousands of times a second, so [`sign_plain`] builds the canonical request in
//! one buffer and takes the signing key from [`SigningKeys`] (derived once per secret, day, region
//! and service). It answers `None` for any request outside that shape, and the caller falls back to
//! `aws-sigv4`; tests check both against botocore's signatures and against each other.

use std::fmt::Write as _;
use std::sync::RwLock;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::sign::v4::generate_signing_key;
use http::header::{AUTHORIZATION, HOST};
use http::{HeaderName, HeaderValue, Request};
use sha2::{Digest, Sha256};

use crate::signed::SendError;

/// Headers never signed (the set `aws-sigv4`'s default settings exclude), and the ones the
/// signature itself sets (replaced, as `aws-sigv4` replaces them).
const UNSIGNED: [&str; 4] = [
    "authorization",
    "user-agent",
    "x-amzn-trace-id",
    "transfer-encoding",
];
const X_AMZ_DATE: &str = "x-amz-date";
const X_AMZ_SECURITY_TOKEN: &str = "x-amz-security-token";

/// A SigV4 signing key: an HMAC-SHA256 output, copied out of the cache without an allocation.
type SigningKey = [u8; 32];

fn derive_key(secret: &str, time: SystemTime, region: &str, service: &str) -> SigningKey {
    let mut key = [0u8; 32];
    key.copy_from_slice(generate_signing_key(secret, time, region, service).as_ref());
    key
}

/// Signing keys by (secret, day, region, service): the key of a day is the same for every request
/// of that day, so the four HMACs that derive it run once a day per region and service.
#[derive(Default)]
pub struct SigningKeys {
    held: RwLock<Vec<KeyEntry>>,
}

struct KeyEntry {
    secret: String,
    day: String,
    region: String,
    service: String,
    key: SigningKey,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKeys(** redacted **)")
    }
}

impl SigningKeys {
    fn key(
        &self,
        secret: &str,
        day: &str,
        region: &str,
        service: &str,
        time: SystemTime,
    ) -> SigningKey {
        let found = |entries: &[KeyEntry]| {
            entries
                .iter()
                .find(|e| {
                    e.day == day && e.region == region && e.service == service && e.secret == secret
                })
                .map(|e| e.key)
        };
        if let Some(key) = found(&self.held.read().unwrap_or_else(|e| e.into_inner())) {
            return key;
        }
        let key = derive_key(secret, time, region, service);
        let mut held = self.held.write().unwrap_or_else(|e| e.into_inner());
        // Keys of other days or secrets are of no more use; a handful of regions and services.
        held.retain(|e| e.day == day && e.secret == secret);
        if held.len() >= 16 {
            held.clear();
        }
        held.push(KeyEntry {
            secret: secret.to_owned(),
            day: day.to_owned(),
            region: region.to_owned(),
            service: service.to_owned(),
            key,
        });
        key
    }
}

/// Signs `request` as `aws-sigv4` with default settings would (signature in the `authorization`
/// header, `x-amz-date` and the session token added and signed, no payload-hash header), if it
/// is a plain request: an absolute URL without query or user info, a path without empty, `.` or
/// `..` segments, no `host` header and no header given twice. `None`: not such a request, nothing
/// changed. `keys`: where signing keys are kept between calls (`None`: derived for this call).
pub(crate) fn sign_plain<B>(
    request: &mut Request<B>,
    body: &[u8],
    credentials: &Credentials,
    service: &str,
    region: &str,
    time: SystemTime,
    keys: Option<&SigningKeys>,
) -> Option<Result<(), SendError>> {
    let uri = request.uri();
    let authority = uri.authority()?;
    if uri.query().is_some()
        || authority.as_str().contains('@')
        || request.headers().contains_key(HOST)
    {
        return None;
    }
    let path = uri.path();
    if !plain_path(path) {
        return None;
    }
    let host = match (uri.scheme_str(), authority.port_u16()) {
        (Some("http"), Some(80)) | (Some("https"), Some(443)) => authority.host(),
        _ => authority.as_str(),
    };
    let amz_date = amz_date(time);
    let day = &amz_date[..8];
    let token = credentials.session_token();

    // name, value (spaces trimmed and collapsed), sorted by name.
    let mut headers: Vec<(&str, std::borrow::Cow<'_, str>)> =
        Vec::with_capacity(request.headers().len() + 3);
    for name in request.headers().keys() {
        let n = name.as_str();
        // The date and a session token are set by the signature (an existing token header is
        // signed as it is when the credentials have none, as `aws-sigv4` does).
        if UNSIGNED.contains(&n)
            || n == X_AMZ_DATE
            || (n == X_AMZ_SECURITY_TOKEN && token.is_some())
        {
            continue;
        }
        let mut values = request.headers().get_all(name).iter();
        let value = values.next()?;
        if values.next().is_some() {
            return None;
        }
        let Ok(value) = value.to_str() else {
            return Some(Err(SendError::InvalidRequest(format!(
                "header {n} is not visible ASCII"
            ))));
        };
        headers.push((n, trim_all(value)));
    }
    headers.push(("host", host.into()));
    headers.push((X_AMZ_DATE, amz_date.as_str().into()));
    if let Some(token) = token {
        headers.push((X_AMZ_SECURITY_TOKEN, token.into()));
    }
    headers.sort_unstable_by(|a, b| a.0.cmp(b.0));

    let mut canonical = String::with_capacity(512);
    canonical.push_str(request.method().as_str());
    canonical.push('\n');
    encode_path(path, &mut canonical);
    canonical.push_str("\n\n");
    let mut signed_headers = String::with_capacity(128);
    for (name, value) in &headers {
        canonical.push_str(name);
        canonical.push(':');
        canonical.push_str(value);
        canonical.push('\n');
        if !signed_headers.is_empty() {
            signed_headers.push(';');
        }
        signed_headers.push_str(name);
    }
    canonical.push('\n');
    canonical.push_str(&signed_headers);
    canonical.push('\n');
    hex_into(&Sha256::digest(body), &mut canonical);

    // Joined, not `format!`ted: formatting cost more than the rest of the string building.
    let scope = [day, "/", region, "/", service, "/aws4_request"].concat();
    let mut string_to_sign = String::with_capacity(160);
    string_to_sign.push_str("AWS4-HMAC-SHA256\n");
    string_to_sign.push_str(&amz_date);
    string_to_sign.push('\n');
    string_to_sign.push_str(&scope);
    string_to_sign.push('\n');
    hex_into(&Sha256::digest(canonical.as_bytes()), &mut string_to_sign);

    let secret = credentials.secret_access_key();
    let signing_key = match keys {
        Some(keys) => keys.key(secret, day, region, service, time),
        None => derive_key(secret, time, region, service),
    };
    let signature = hmac_sha256(&signing_key, string_to_sign.as_bytes());
    // Exactly its length: the value becomes a header value without a copy.
    let mut authorization = String::with_capacity(
        "AWS4-HMAC-SHA256 Credential=/, SignedHeaders=, Signature=".len()
            + credentials.access_key_id().len()
            + scope.len()
            + signed_headers.len()
            + 64,
    );
    for part in [
        "AWS4-HMAC-SHA256 Credential=",
        credentials.access_key_id(),
        "/",
        &scope,
        ", SignedHeaders=",
        &signed_headers,
        ", Signature=",
    ] {
        authorization.push_str(part);
    }
    hex_into(&signature, &mut authorization);

    debug_assert_eq!(authorization.len(), authorization.capacity());

    let headers = request.headers_mut();
    // From `Bytes` made of the strings themselves: no copy (a `Vec` whose length is its capacity
    // becomes `Bytes` without allocating).
    let value = |s: String| HeaderValue::from_maybe_shared(bytes::Bytes::from(s.into_bytes()));
    let (Ok(date), Ok(mut auth)) = (value(amz_date), value(authorization)) else {
        return Some(Err(SendError::InvalidRequest(
            "the access key id is not a valid header value".into(),
        )));
    };
    auth.set_sensitive(true);
    headers.insert(HeaderName::from_static(X_AMZ_DATE), date);
    if let Some(token) = token {
        let Ok(mut v) = HeaderValue::from_str(token) else {
            return Some(Err(SendError::InvalidRequest(
                "the session token is not a valid header value".into(),
            )));
        };
        v.set_sensitive(true);
        headers.insert(HeaderName::from_static(X_AMZ_SECURITY_TOKEN), v);
    }
    headers.insert(AUTHORIZATION, auth);
    Some(Ok(()))
}

/// A path the canonical form takes as it is (no segment to normalise away).
fn plain_path(path: &str) -> bool {
    path.starts_with('/')
        && (path == "/"
            || path[1..]
                .split('/')
                .all(|s| !s.is_empty() && s != "." && s != ".."))
}

/// The path percent-encoded once more (`%` becomes `%25`): every byte but the unreserved ones and
/// `/`, as AWS services other than S3 expect.
fn encode_path(path: &str, out: &mut String) {
    for &b in path.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// Spaces at both ends removed, runs of spaces made one (only spaces, as SigV4 says).
fn trim_all(value: &str) -> std::borrow::Cow<'_, str> {
    let value = value.trim_matches(' ');
    if !value.contains("  ") {
        return value.into();
    }
    let mut out = String::with_capacity(value.len());
    let mut last_space = false;
    for c in value.chars() {
        if c == ' ' && last_space {
            continue;
        }
        last_space = c == ' ';
        out.push(c);
    }
    out.into()
}

/// HMAC-SHA256 (RFC 2104) keyed by a signing key: the request's signature (what `aws-sigv4`'s
/// `calculate_signature` computes, as bytes, without its hex string). The key is shorter than
/// SHA-256's 64-byte block, so it is used as it is, zero-padded.
fn hmac_sha256(key: &SigningKey, message: &[u8]) -> [u8; 32] {
    let mut pad = [0x36u8; 64];
    pad.iter_mut().zip(key).for_each(|(p, k)| *p ^= k);
    let inner = Sha256::new()
        .chain_update(pad)
        .chain_update(message)
        .finalize();
    pad.iter_mut().for_each(|p| *p ^= 0x36 ^ 0x5c);
    Sha256::new()
        .chain_update(pad)
        .chain_update(inner)
        .finalize()
        .into()
}

fn hex_into(bytes: &[u8], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0xf)] as char);
    }
}

/// `YYYYMMDDTHHMMSSZ` of `time` (UTC; times before 1970 are taken as 1970), in a `String` of exactly
/// its length (so it becomes a header value without a copy); its first 8 characters are the scope's
/// day.
fn amz_date(time: SystemTime) -> String {
    let secs = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    // Digit by digit: `format!` with padding cost more than the signature's own string building.
    let mut full = String::with_capacity(16);
    push_digits(&mut full, y as u64, 4);
    push_digits(&mut full, u64::from(m), 2);
    push_digits(&mut full, u64::from(d), 2);
    full.push('T');
    push_digits(&mut full, rem / 3600, 2);
    push_digits(&mut full, rem % 3600 / 60, 2);
    push_digits(&mut full, rem % 60, 2);
    full.push('Z');
    full
}

/// Appends the last `width` decimal digits of `n`, zero-padded.
fn push_digits(out: &mut String, n: u64, width: u32) {
    for p in (0..width).rev() {
        out.push(char::from(b'0' + (n / 10u64.pow(p) % 10) as u8));
    }
}

/// Days since 1970-01-01 to (year, month, day): Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signed::sign_with_aws_sigv4;
    use std::time::Duration;

    #[test]
    fn signatures_are_aws_sigv4s() {
        let mut key = [0u8; 32];
        for n in 0..200usize {
            key.iter_mut()
                .enumerate()
                .for_each(|(i, k)| *k = (i * 31 + n * 7) as u8);
            let message: Vec<u8> = (0..n * 3).map(|i| (i * 13 + n) as u8).collect();
            let mut ours = String::new();
            hex_into(&hmac_sha256(&key, &message), &mut ours);
            assert_eq!(
                ours,
                aws_sigv4::sign::v4::calculate_signature(key, &message),
                "message of {} bytes",
                message.len()
            );
        }
    }

    #[test]
    fn dates_are_civil_utc() {
        let at = |s: u64| amz_date(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "19700101T000000Z");
        assert_eq!(at(1_790_771_696), "20260930T123456Z");
        assert_eq!(at(951_782_400), "20000229T000000Z");
        assert_eq!(at(4_107_542_399), "21000228T235959Z");
        assert_eq!(at(4_107_542_400), "21000301T000000Z");
    }

    #[test]
    fn only_plain_requests_take_the_fast_path() {
        for (path, plain) in [
            ("/", true),
            ("/model/us.anthropic.claude-x%3A0/converse", true),
            ("/anthropic/v1/messages", true),
            ("/a//b", false),
            ("/a/./b", false),
            ("/a/../b", false),
            ("/a/", false),
            ("", false),
        ] {
            assert_eq!(plain_path(path), plain, "{path}");
        }
        let creds = Credentials::new("AKID", "secret", None, None, "t");
        let mut r = Request::new(());
        *r.uri_mut() = "https://h.example/x?y=1".parse().unwrap();
        assert!(
            sign_plain(
                &mut r,
                b"",
                &creds,
                "bedrock",
                "us-east-1",
                SystemTime::now(),
                None
            )
            .is_none()
        );
        assert!(
            r.headers().is_empty(),
            "nothing is changed when the path is not taken"
        );
    }

    /// A small deterministic generator (no dependency for a test's randomness).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            self.0 >> 33
        }
        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[(self.next() as usize) % items.len()]
        }
    }

    #[test]
    fn the_fast_path_signs_as_aws_sigv4_does() {
        let mut rng = Lcg(7);
        let keys = SigningKeys::default();
        let mut fast = 0;
        for i in 0..600 {
            let url = format!(
                "{}{}{}",
                rng.pick(&[
                    "https://bedrock-runtime.us-east-1.amazonaws.com",
                    "http://127.0.0.1:8001",
                    "https://h.example:443",
                    "http://h.example:80",
                    "https://bedrock-mantle.eu-west-1.api.aws:8443"
                ]),
                rng.pick(&[
                    "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse",
                    "/model/qwen.qwen3-coder-480b-a35b-v1:0/invoke-with-response-stream",
                    "/anthropic/v1/messages",
                    "/",
                    "/mantle/anthropic/v1/messages/count_tokens",
                    "/model/a%2Fb/invoke",
                    "/x/./y",
                    "/q"
                ]),
                rng.pick(&["", "", "", "?a=b&c=d%20e"]),
            );
            let mut request = Request::new(());
            *request.method_mut() = http::Method::POST;
            *request.uri_mut() = url.parse().unwrap();
            for _ in 0..(rng.next() % 6) {
                let name = rng.pick(&[
                    "content-type",
                    "accept",
                    "anthropic-version",
                    "anthropic-beta",
                    "x-amzn-bedrock-trace",
                    "user-agent",
                    "x-amz-date",
                    "authorization",
                    "x-amzn-trace-id",
                    "x-custom",
                    "x-amz-security-token",
                ]);
                let value = rng.pick(&[
                    "application/json",
                    "  two  spaces   inside  ",
                    "text/event-stream",
                    "a,b",
                    "",
                    "2023-06-01",
                ]);
                request.headers_mut().insert(
                    HeaderName::from_static(name),
                    HeaderValue::from_static(value),
                );
            }
            if rng.next().is_multiple_of(10) {
                request
                    .headers_mut()
                    .append("accept", HeaderValue::from_static("x/y"));
            }
            let token = rng
                .next()
                .is_multiple_of(2)
                .then(|| "IQoJb3JpZ2luX2VjEXAMPLE//+token==".to_owned());
            let creds = Credentials::new(
                "AKIDEXAMPLE",
                rng.pick(&["wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "other/secret+"]),
                token,
                None,
                "t",
            );
            let body = rng
                .pick(&[
                    "",
                    "{}",
                    r#"{"model":"x","messages":[{"role":"user","content":"ünïcödé ✓"}]}"#,
                ])
                .as_bytes();
            let service = rng.pick(&["bedrock", "bedrock-mantle"]);
            let region = rng.pick(&["us-east-1", "eu-west-1", "ap-southeast-2"]);
            let time = SystemTime::UNIX_EPOCH
                + Duration::from_secs(1_700_000_000 + rng.next() % 400_000_000);

            let mut reference = Request::new(());
            *reference.method_mut() = request.method().clone();
            *reference.uri_mut() = request.uri().clone();
            *reference.headers_mut() = request.headers().clone();
            sign_with_aws_sigv4(&mut reference, body, &creds, service, region, time).unwrap();
            let cached = if i % 2 == 0 { Some(&keys) } else { None };
            match sign_plain(&mut request, body, &creds, service, region, time, cached) {
                None => continue,
                Some(r) => r.unwrap(),
            }
            fast += 1;
            for name in ["authorization", "x-amz-date", "x-amz-security-token"] {
                assert_eq!(
                    request.headers().get(name),
                    reference.headers().get(name),
                    "{name} of case {i}: {url}"
                );
            }
        }
        assert!(fast > 300, "the fast path was taken {fast} times only");
    }
}
