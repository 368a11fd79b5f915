//! Plivo callback signatures: computing and checking the `X-Plivo-Signature-V3`
//! and `X-Plivo-Signature-V2` headers.
//!
//! Both families are Base64 (standard alphabet, padded) of an HMAC-SHA256 keyed
//! with an Auth Token. They differ in the signed message:
//!
//! - V2 signs the called URL without query or fragment, immediately followed by
//!   the nonce.
//! - V3 signs the full URL, the sorted request parameters and the nonce. GET
//!   requests render the parameters as a query string; other methods append
//!   them as `keyvalue` pairs after the URL's own query (see [`sign_v3`]).
//!
//! A V3 header may carry several comma-separated signatures when more than one
//! Auth Token is active; a request is valid when any of them matches any of the
//! tokens the receiver trusts. Comparisons run in constant time.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use url::form_urlencoded;

type HmacSha256 = Hmac<Sha256>;

/// Computes the `X-Plivo-Signature-V3` value for one request and one Auth Token.
///
/// `params` are the decoded form fields of a POST, or the parameters added to the
/// query of a GET. `url` is the URL exactly as the sender was configured with it.
///
/// The signed message is `url` without query, then for GET `?k=v&…` over the
/// query and `params` together (sorted by key, then value); for other methods
/// `?`, the sorted query as `k=v&…`, a `.` when both parts exist, and the
/// sorted `params` as `keyvalue` with no separator. Last come `.` and the nonce.
pub fn sign_v3(
    method: &str,
    url: &str,
    params: &[(String, String)],
    nonce: &str,
    auth_token: &str,
) -> String {
    hmac_base64(auth_token, &v3_message(method, url, params, nonce))
}

/// Checks a `X-Plivo-Signature-V3` (or `-Ma-V3`) header against the request.
///
/// Returns `true` when any comma-separated signature in `signature_header`
/// equals the signature computed with any of `auth_tokens`. An empty header or
/// an empty token list never validates.
pub fn verify_v3(
    method: &str,
    url: &str,
    params: &[(String, String)],
    nonce: &str,
    signature_header: &str,
    auth_tokens: &[&str],
) -> bool {
    let message = v3_message(method, url, params, nonce);
    let expected: Vec<String> = auth_tokens
        .iter()
        .map(|token| hmac_base64(token, &message))
        .collect();
    any_signature_matches(signature_header, &expected)
}

/// Computes the `X-Plivo-Signature-V2` value: HMAC of the URL (scheme, host,
/// port and path; no query or fragment) followed directly by the nonce.
pub fn sign_v2(url: &str, nonce: &str, auth_token: &str) -> String {
    let mut message = base_url(url);
    message.push_str(nonce);
    hmac_base64(auth_token, &message)
}

/// Checks a `X-Plivo-Signature-V2` (or `-Ma-V2`) header; the fallback when a
/// request carries no V3 header.
pub fn verify_v2(url: &str, nonce: &str, signature_header: &str, auth_tokens: &[&str]) -> bool {
    let expected: Vec<String> = auth_tokens
        .iter()
        .map(|token| sign_v2(url, nonce, token))
        .collect();
    any_signature_matches(signature_header, &expected)
}

/// Builds the string V3 signs.
///
/// - GET: `base?k1=v1&k2=v2` over the URL's query parameters and `params`
///   together, sorted by key then value (byte order), then `.nonce`.
/// - POST (and any other method): `base`, then `?` when the URL has a query or
///   there are params, the sorted query as `k=v` joined by `&`, a `.` only when
///   both are present, the params sorted and written as `keyvalue` with no
///   separator, then `.nonce`.
///
/// `base` is scheme, `://`, host, the port when the URL names one, and the path.
fn v3_message(method: &str, url: &str, params: &[(String, String)], nonce: &str) -> String {
    let base = base_url(url);
    let mut query = query_pairs(url);
    let mut message = base;

    if method.eq_ignore_ascii_case("GET") {
        query.extend(params.iter().cloned());
        query.sort();
        if !query.is_empty() {
            message.push('?');
            message.push_str(&join_query(&query));
        }
    } else {
        query.sort();
        let mut body = params.to_vec();
        body.sort();
        if !query.is_empty() || !body.is_empty() {
            message.push('?');
        }
        message.push_str(&join_query(&query));
        if !query.is_empty() && !body.is_empty() {
            message.push('.');
        }
        for (key, value) in &body {
            message.push_str(key);
            message.push_str(value);
        }
    }

    message.push('.');
    message.push_str(nonce);
    message
}

/// Returns `url` without its query and fragment, exactly as written otherwise.
///
/// The URL is not normalised: `https://answer.url` stays without a trailing
/// slash and an explicit port stays, because the signer hashed the text it was
/// configured with.
fn base_url(url: &str) -> String {
    let without_fragment = url.split('#').next().unwrap_or(url);
    let without_query = without_fragment
        .split('?')
        .next()
        .unwrap_or(without_fragment);
    without_query.to_string()
}

/// Returns the decoded query parameters of `url`.
fn query_pairs(url: &str) -> Vec<(String, String)> {
    let without_fragment = url.split('#').next().unwrap_or(url);
    match without_fragment.split_once('?') {
        Some((_, query)) => form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect(),
        None => Vec::new(),
    }
}

fn join_query(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn hmac_base64(auth_token: &str, message: &str) -> String {
    // HMAC accepts keys of any length, so this constructor cannot fail.
    let mut mac = HmacSha256::new_from_slice(auth_token.as_bytes())
        .expect("HMAC-SHA256 accepts keys of any length");
    mac.update(message.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Compares every header entry with every expected signature without stopping
/// at the first match, so timing reveals neither which entry matched nor where
/// a wrong one first differs.
fn any_signature_matches(signature_header: &str, expected: &[String]) -> bool {
    let mut matched = subtle::Choice::from(0u8);
    for candidate in signature_header.split(',').map(str::trim) {
        if candidate.is_empty() {
            continue;
        }
        for signature in expected {
            matched |= candidate.as_bytes().ct_eq(signature.as_bytes());
        }
    }
    matched.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const V3_TOKEN: &str = "Y2Q2ZDgxZmY5YWRiOTI5YmQ1Njg0MTAxZWIyOTc4";
    const V3_NONCE: &str = "31627761595286130198";
    const URL_WITH_QUERY: &str =
        "https://plivobin.non-prod.plivops.com/api/v1/validate_signature03.xml/?a=b&c=d";
    const URL_PLAIN: &str = "https://plivobin.non-prod.plivops.com/api/v1/validate_signature03.xml";

    fn call_params() -> Vec<(String, String)> {
        let uuid = "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36";
        [
            ("Direction", "outbound"),
            ("From", "19792014278"),
            ("ALegUUID", uuid),
            ("CallStatus", "in-progress"),
            ("BillRate", "0.002"),
            ("ParentAuthID", "MANWVLYTK4ZWU1YTY4QA"),
            (
                "To",
                "sip:PlivoSignature382029104058171078704104@phone-qa.voice.plivodev.com",
            ),
            ("ALegRequestUUID", uuid),
            ("CallUUID", uuid),
            ("RequestUUID", uuid),
            (
                "SIP-H-To",
                "<sip:PlivoSignature382029104058171078704104@52.9.11.55;transport=udp>;tag=1",
            ),
            ("SessionStart", "2020-04-08 11:34:33.238707"),
            ("Event", "StartApp"),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn v3_post_with_query_matches_sdk_vector() {
        let signature = sign_v3("POST", URL_WITH_QUERY, &call_params(), V3_NONCE, V3_TOKEN);
        assert_eq!(signature, "k7Pusd4OxCIjR5IfA9iedDNu/h/gbdYqdzG/MiYtd1c=");
    }

    #[test]
    fn v3_get_with_query_matches_sdk_vector() {
        let signature = sign_v3("GET", URL_WITH_QUERY, &call_params(), V3_NONCE, V3_TOKEN);
        assert_eq!(signature, "UBq8jAtd32wR8EK9VgxbBn4n5rpI/l1H9iN4WfSEHFQ=");
    }

    #[test]
    fn v3_post_without_query_matches_sdk_vector() {
        let signature = sign_v3("POST", URL_PLAIN, &call_params(), V3_NONCE, V3_TOKEN);
        assert_eq!(signature, "iAjE5QqI37mbkYe4w3jTMudqEzbDufdqi7sYwTu64e0=");
    }

    #[test]
    fn v3_get_without_query_matches_sdk_vector() {
        let signature = sign_v3("GET", URL_PLAIN, &call_params(), V3_NONCE, V3_TOKEN);
        assert_eq!(signature, "i/MQsaQSAd6fiKhOh2qeeeLHZ9faldADSb3/7+Akfbc=");
    }

    #[test]
    fn v3_caller_reputation_callback_vector() {
        let params = pairs(&[
            ("number", "14155550100"),
            ("caller_reputation_status", "ACTIVE"),
        ]);
        let url = "https://example.com/cr/webhook";
        let nonce = "12345678901234567890";
        assert_eq!(
            v3_message("POST", url, &params, nonce),
            "https://example.com/cr/webhook?caller_reputation_statusACTIVEnumber14155550100.12345678901234567890"
        );
        assert_eq!(
            sign_v3("POST", url, &params, nonce, "my_auth_token"),
            "JfmxIim/qymUcRLjm5Bk60+3mKWPBsNVJ/IoXMLpN1g="
        );
    }

    #[test]
    fn v3_post_with_query_and_no_params_vector() {
        let url = "https://example.com/cr/webhook?x=1";
        let nonce = "12345678901234567890";
        assert_eq!(
            v3_message("POST", url, &[], nonce),
            "https://example.com/cr/webhook?x=1.12345678901234567890"
        );
        assert_eq!(
            sign_v3("POST", url, &[], nonce, "my_auth_token"),
            "sZv3TVHGid8SUntM91AqS+3h2+yK9n+pmEszWFt+oJg="
        );
    }

    #[test]
    fn v3_verify_accepts_sdk_vector() {
        assert!(verify_v3(
            "POST",
            URL_WITH_QUERY,
            &call_params(),
            V3_NONCE,
            "k7Pusd4OxCIjR5IfA9iedDNu/h/gbdYqdzG/MiYtd1c=",
            &[V3_TOKEN],
        ));
    }

    #[test]
    fn v3_verify_rejects_wrong_token() {
        assert!(!verify_v3(
            "POST",
            URL_WITH_QUERY,
            &call_params(),
            V3_NONCE,
            "k7Pusd4OxCIjR5IfA9iedDNu/h/gbdYqdzG/MiYtd1c=",
            &["Y2Q2ZDgxZmY5YWRiOTI5YmQ1Njg0MTAxZWIyOTc5"],
        ));
    }

    #[test]
    fn v3_verify_rejects_tampered_param() {
        let mut params = call_params();
        params[1].1 = "19792014279".to_string();
        assert!(!verify_v3(
            "POST",
            URL_WITH_QUERY,
            &params,
            V3_NONCE,
            "k7Pusd4OxCIjR5IfA9iedDNu/h/gbdYqdzG/MiYtd1c=",
            &[V3_TOKEN],
        ));
    }

    #[test]
    fn v3_verify_rejects_other_method_nonce_or_url() {
        let signature = "k7Pusd4OxCIjR5IfA9iedDNu/h/gbdYqdzG/MiYtd1c=";
        let params = call_params();
        assert!(!verify_v3(
            "GET",
            URL_WITH_QUERY,
            &params,
            V3_NONCE,
            signature,
            &[V3_TOKEN]
        ));
        assert!(!verify_v3(
            "POST",
            URL_WITH_QUERY,
            &params,
            "31627761595286130199",
            signature,
            &[V3_TOKEN]
        ));
        assert!(!verify_v3(
            "POST",
            URL_PLAIN,
            &params,
            V3_NONCE,
            signature,
            &[V3_TOKEN]
        ));
    }

    #[test]
    fn v3_verify_accepts_any_of_several_signatures() {
        let header = "bm90IGEgc2lnbmF0dXJl, k7Pusd4OxCIjR5IfA9iedDNu/h/gbdYqdzG/MiYtd1c=";
        assert!(verify_v3(
            "POST",
            URL_WITH_QUERY,
            &call_params(),
            V3_NONCE,
            header,
            &[V3_TOKEN],
        ));
    }

    #[test]
    fn v3_verify_accepts_any_of_several_tokens() {
        assert!(verify_v3(
            "POST",
            URL_WITH_QUERY,
            &call_params(),
            V3_NONCE,
            "k7Pusd4OxCIjR5IfA9iedDNu/h/gbdYqdzG/MiYtd1c=",
            &["subaccount-token", V3_TOKEN],
        ));
    }

    #[test]
    fn v3_verify_rejects_empty_header_and_empty_tokens() {
        let params = call_params();
        assert!(!verify_v3(
            "POST",
            URL_WITH_QUERY,
            &params,
            V3_NONCE,
            "",
            &[V3_TOKEN]
        ));
        assert!(!verify_v3(
            "POST",
            URL_WITH_QUERY,
            &params,
            V3_NONCE,
            " , ",
            &[V3_TOKEN]
        ));
        assert!(!verify_v3(
            "POST",
            URL_WITH_QUERY,
            &params,
            V3_NONCE,
            "k7Pusd4OxCIjR5IfA9iedDNu/h/gbdYqdzG/MiYtd1c=",
            &[],
        ));
    }

    #[test]
    fn v2_matches_sdk_vector() {
        assert_eq!(
            sign_v2("https://answer.url", "12345", "my_auth_token"),
            "ehV3IKhLysWBxC1sy8INm0qGoQYdYsHwuoKjsX7FsXc="
        );
    }

    #[test]
    fn v2_verify_accepts_right_token_only() {
        let signature = "ehV3IKhLysWBxC1sy8INm0qGoQYdYsHwuoKjsX7FsXc=";
        assert!(verify_v2(
            "https://answer.url",
            "12345",
            signature,
            &["my_auth_token"]
        ));
        assert!(!verify_v2(
            "https://answer.url",
            "12345",
            signature,
            &["my_auth_tokens"]
        ));
    }

    #[test]
    fn v2_ignores_query_but_keeps_port() {
        let with_query = sign_v2("http://127.0.0.1:8080/cb?x=1", "n", "token");
        let without_query = sign_v2("http://127.0.0.1:8080/cb", "n", "token");
        let other_port = sign_v2("http://127.0.0.1:8081/cb", "n", "token");
        assert_eq!(with_query, without_query);
        assert_ne!(without_query, other_port);
    }
}
