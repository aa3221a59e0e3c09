//! The probe part of a check: exactly one of `http`, `tcp`, `tls` or `dns`.

use crate::catalog::*;
use crate::decode::{Cx, Field};
use crate::defaults::{DNS_PORT, HTTP_MAX_BODY, HTTP_MAX_REDIRECTS, TLS_PORT};
use crate::raw::*;
use crate::source::{NodeId, clip};
use crate::units::{DurationText, SizeText, format_duration};
use regex::Regex;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Validates whichever kind the check has; exactly one must be present.
pub(super) fn kind(cx: &Cx, raw: &RawCheck, at: NodeId, timeout: Duration) -> Option<Probe> {
    let present: Vec<(&str, NodeId)> = [
        ("http", raw.http.map(|f| f.id)),
        ("tcp", raw.tcp.map(|f| f.id)),
        ("tls", raw.tls.map(|f| f.id)),
        ("dns", raw.dns.map(|f| f.id)),
    ]
    .into_iter()
    .filter_map(|(k, id)| Some((k, id?)))
    .collect();
    match present.as_slice() {
        [] => {
            cx.error(
                at,
                "missing the probe: expected one of `http`, `tcp`, `tls` or `dns`",
            );
            None
        }
        [_] => {
            if let Some(f) = raw.http {
                http(cx, cx.get(f)?, timeout).map(|p| Probe::Http(Box::new(p)))
            } else if let Some(f) = raw.tcp {
                tcp(cx, cx.get(f)?, timeout).map(|p| Probe::Tcp(Box::new(p)))
            } else if let Some(f) = raw.tls {
                tls(cx, cx.get(f)?, timeout).map(|p| Probe::Tls(Box::new(p)))
            } else {
                dns(cx, cx.get(raw.dns?)?, timeout).map(|p| Probe::Dns(Box::new(p)))
            }
        }
        [(first, _), (second, second_at), ..] => {
            cx.error(
                *second_at,
                format!("a check has exactly one probe, found both `{first}` and `{second}`: split it into two checks"),
            );
            None
        }
    }
}

fn http(cx: &Cx, raw: RawHttp, timeout: Duration) -> Option<HttpProbe> {
    let url = url(cx, raw.url);
    let method = cx.opt(raw.method).unwrap_or(Method::Get);
    let headers = headers(cx, raw.headers);
    let body = cx.opt(raw.body);
    let max_redirects = match raw.max_redirects {
        None => Some(HTTP_MAX_REDIRECTS),
        Some(f) => cx.get(f).and_then(|n| {
            if n > 100 {
                cx.error(
                    f.id,
                    format!("expected a number of redirects from 0 to 100, found `{n}`"),
                );
                None
            } else {
                Some(n)
            }
        }),
    };
    let max_body = match raw.max_body {
        None => Some(HTTP_MAX_BODY),
        Some(f) => cx.get(f).and_then(|SizeText(n)| {
            if n == 0 {
                cx.error(f.id, "expected a size greater than 0, found `0`");
                None
            } else {
                Some(n)
            }
        }),
    };
    let prefer_ip = cx.opt(raw.prefer_ip).unwrap_or(IpFamily::Ipv4);
    let ip_fallback = cx.opt(raw.ip_fallback).unwrap_or(true);
    let http2 = cx.opt(raw.http2).unwrap_or(true);
    let https = url.as_ref().map(|u| u.scheme() == "https");
    let tls = match raw.tls {
        None => Some(ClientTls::default()),
        Some(f) => {
            if https == Some(false) {
                cx.error(f.id, "`tls` applies only to https:// URLs");
            }
            cx.get(f).and_then(|t| client_tls(cx, t))
        }
    };
    let expect = http_expect(cx, raw.expect, timeout, https);
    let request = HttpRequest {
        headers: headers?,
        body,
    };
    Some(HttpProbe {
        url: url?,
        method,
        request: Some(request)
            .filter(|r| *r != HttpRequest::default())
            .map(Box::new),
        max_redirects: max_redirects?,
        max_body: max_body?,
        prefer_ip,
        ip_fallback,
        http2,
        tls: Some(tls?)
            .filter(|t| *t != ClientTls::default())
            .map(Box::new),
        expect: expect?,
    })
}

fn url(cx: &Cx, f: Field<String>) -> Option<url::Url> {
    let text = cx.get(f)?;
    let shown = super::shown(cx, f.id, "a URL", &text);
    match url::Url::parse(&text) {
        Ok(u) if !matches!(u.scheme(), "http" | "https") => {
            cx.error(
                f.id,
                format!("expected an http:// or https:// URL, found {shown}"),
            );
            None
        }
        Ok(u) if u.host_str().is_none_or(str::is_empty) => {
            cx.error(f.id, format!("expected a URL with a host, found {shown}"));
            None
        }
        Ok(u) => Some(u),
        Err(e) => {
            cx.error(
                f.id,
                format!("expected an http:// or https:// URL, found {shown} ({e})"),
            );
            None
        }
    }
}

fn headers(
    cx: &Cx,
    f: Option<Field<BTreeMap<String, Field<String>>>>,
) -> Option<Vec<(String, String)>> {
    let Some(f) = f else {
        return Some(Vec::new());
    };
    let map = cx.get(f)?;
    let mut ok = true;
    let mut out = Vec::new();
    for (header, value) in map {
        if !is_token(&header) {
            cx.error(
                value.id,
                format!(
                    "expected a header name of letters, digits and `-`, found `{}`",
                    clip(&header, 60)
                ),
            );
            ok = false;
        }
        if let Some(v) = cx.get(value) {
            if v.contains(['\r', '\n']) {
                cx.error(
                    value.id,
                    "expected a header value on one line, found a line break",
                );
                ok = false;
            }
            out.push((header, v));
        } else {
            ok = false;
        }
    }
    ok.then_some(out)
}

/// An HTTP token (RFC 9110 `tchar`), as header names are.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn client_tls(cx: &Cx, raw: RawClientTls) -> Option<ClientTls> {
    let cert = cx.opt(raw.client_cert_file).map(PathBuf::from);
    let key = cx.opt(raw.client_key_file).map(PathBuf::from);
    let client_cert = match (cert, key, raw.client_cert_file, raw.client_key_file) {
        (Some(c), Some(k), _, _) => Some(Some((c, k))),
        (None, None, None, None) => Some(None),
        (Some(_), None, Some(f), None) => {
            cx.error(f.id, "`client_cert_file` needs `client_key_file` too");
            None
        }
        (None, Some(_), None, Some(f)) => {
            cx.error(f.id, "`client_key_file` needs `client_cert_file` too");
            None
        }
        _ => None,
    };
    Some(ClientTls {
        ca_file: cx.opt(raw.ca_file).map(PathBuf::from),
        client_cert: client_cert?,
        server_name: server_name(cx, raw.server_name)?,
        insecure_skip_verify: cx.opt(raw.insecure_skip_verify).unwrap_or(false),
    })
}

fn server_name(cx: &Cx, f: Option<Field<String>>) -> Option<Option<String>> {
    let Some(f) = f else {
        return Some(None);
    };
    let text = cx.get(f)?;
    if is_host(&text) {
        Some(Some(text))
    } else {
        cx.error(
            f.id,
            format!("expected a host name, found `{}`", clip(&text, 60)),
        );
        None
    }
}

fn http_expect(
    cx: &Cx,
    f: Option<Field<RawHttpExpect>>,
    timeout: Duration,
    https: Option<bool>,
) -> Option<HttpExpect> {
    let Some(f) = f else {
        return Some(HttpExpect {
            status: Statuses::One(StatusPattern::Class(2)),
            body_contains: None,
            timing: Timing::default(),
            more: None,
        });
    };
    let raw = cx.get(f)?;
    let status = match raw.status {
        None => Some(vec![StatusPattern::Class(2)]),
        Some(sf) => cx.get(sf).and_then(|items| {
            if items.is_empty() {
                cx.error(
                    sf.id,
                    "expected at least one status code or class, found an empty list",
                );
                return None;
            }
            let parsed: Vec<_> = items.iter().filter_map(|i| cx.get(*i)).collect();
            (parsed.len() == items.len()).then_some(parsed)
        }),
    };
    let json = match raw.json {
        None => Some(Vec::new()),
        Some(jf) => cx.get(jf).and_then(|items| {
            let parsed: Vec<_> = items
                .iter()
                .filter_map(|i| cx.get(*i).and_then(|j| json_assertion(cx, j, i.id)))
                .collect();
            (parsed.len() == items.len()).then_some(parsed)
        }),
    };
    let headers = match raw.headers {
        None => Some(Vec::new()),
        Some(hf) => cx.get(hf).and_then(|map| {
            let total = map.len();
            let parsed: Vec<_> = map
                .into_iter()
                .filter_map(|(name, value)| {
                    Some((name.to_ascii_lowercase(), regex(cx, Some(value))??))
                })
                .collect();
            (parsed.len() == total).then_some(parsed)
        }),
    };
    let certificate_valid_for = raw.certificate_valid_for.and_then(|c| {
        if https == Some(false) {
            cx.error(
                c.id,
                "`certificate_valid_for` applies only to https:// URLs",
            );
        }
        cx.get(c).map(|d| d.0)
    });
    let more = MoreHttpExpect {
        body_not_contains: cx.opt(raw.body_not_contains),
        body_matches: regex(cx, raw.body_matches)?,
        json: json?,
        headers: headers?,
        certificate_valid_for,
    };
    Some(HttpExpect {
        status: status?.into(),
        body_contains: cx
            .opt::<String>(raw.body_contains)
            .map(String::into_boxed_str),
        timing: timing(cx, raw.response_time_under, raw.degraded_over, timeout)?,
        more: (!more.is_empty()).then(|| Box::new(more)),
    })
}

fn json_assertion(cx: &Cx, raw: RawJsonAssertion, at: NodeId) -> Option<JsonAssertion> {
    let path_text = cx.get(raw.path)?;
    let path = match serde_json_path::JsonPath::parse(&path_text) {
        Ok(p) => Some(p),
        Err(e) => {
            cx.error(
                raw.path.id,
                format!(
                    "expected a JSONPath such as `$.status`, found `{}`: {}",
                    clip(&path_text, 60),
                    one_line(&e.to_string())
                ),
            );
            None
        }
    };
    let check = match (raw.equals, raw.exists) {
        (Some(e), None) => cx.get(e).map(|JsonScalar(v)| JsonCheck::Equals(v)),
        (None, Some(e)) => cx.get(e).map(JsonCheck::Exists),
        (None, None) => {
            cx.error(
                at,
                "missing key `equals` or `exists`: a JSON assertion needs one of them",
            );
            None
        }
        (Some(_), Some(e)) => {
            cx.error(e.id, "give either `equals` or `exists`, not both");
            None
        }
    };
    Some(JsonAssertion {
        path_text,
        path: path?,
        check: check?,
    })
}

/// A compiled regex; `Some(None)` when absent, `None` when wrong.
fn regex(cx: &Cx, f: Option<Field<String>>) -> Option<Option<Regex>> {
    let Some(f) = f else {
        return Some(None);
    };
    let text = cx.get(f)?;
    match regex::RegexBuilder::new(&text).size_limit(1 << 20).build() {
        Ok(r) => Some(Some(r)),
        Err(e) => {
            cx.error(
                f.id,
                format!(
                    "expected a regular expression, found `{}`: {}",
                    clip(&text, 60),
                    regex_problem(&e)
                ),
            );
            None
        }
    }
}

/// The last line of a regex error says what is wrong; the rest draws a caret.
fn regex_problem(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .rev()
        .find(|l| l.starts_with("error: "))
        .map(|l| l.trim_start_matches("error: ").to_string())
        .unwrap_or_else(|| one_line(&text))
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn timing(
    cx: &Cx,
    under: Option<Field<DurationText>>,
    over: Option<Field<DurationText>>,
    timeout: Duration,
) -> Option<Timing> {
    let mut ok = true;
    let mut limit = |f: Option<Field<DurationText>>, key: &str| -> Option<Duration> {
        let f = f?;
        let d = cx.get(f)?.0;
        if d.is_zero() {
            cx.error(f.id, "expected a duration greater than 0, found `0s`");
            ok = false;
        } else if d > timeout {
            cx.error(
                f.id,
                format!(
                    "`{key}` must be at most the timeout ({}), found `{}`",
                    format_duration(timeout),
                    format_duration(d)
                ),
            );
            ok = false;
        }
        Some(d)
    };
    let response_time_under = limit(under, "response_time_under");
    let degraded_over = limit(over, "degraded_over");
    if let (Some(u), Some(o), Some(of)) = (response_time_under, degraded_over, over)
        && o >= u
    {
        cx.error(
            of.id,
            format!(
                "`degraded_over` must be less than `response_time_under` ({}), found `{}`",
                format_duration(u),
                format_duration(o)
            ),
        );
        ok = false;
    }
    ok.then_some(Timing {
        response_time_under,
        degraded_over,
    })
}

/// A host name or an IP address: no scheme, port, path or spaces.
fn is_host(text: &str) -> bool {
    if text.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn host(cx: &Cx, f: Field<String>) -> Option<String> {
    let text = cx.get(f)?;
    if is_host(&text) {
        Some(text)
    } else {
        let hint = if text.contains("://") {
            " (give the host alone, without a scheme)"
        } else if text.contains(':') {
            " (give the port in `port`)"
        } else {
            ""
        };
        cx.error(
            f.id,
            format!(
                "expected a host name or IP address, found `{}`{hint}",
                clip(&text, 60)
            ),
        );
        None
    }
}

fn port(cx: &Cx, f: Option<Field<u32>>, default: Option<u16>) -> Option<u16> {
    let Some(f) = f else {
        return default;
    };
    let n = cx.get(f)?;
    match u16::try_from(n) {
        Ok(p) if p > 0 => Some(p),
        _ => {
            cx.error(
                f.id,
                format!("expected a port from 1 to 65535, found `{n}`"),
            );
            None
        }
    }
}

fn tcp(cx: &Cx, raw: RawTcp, timeout: Duration) -> Option<TcpProbe> {
    let host = host(cx, raw.host);
    let port = port(cx, Some(raw.port), None);
    let (reply_matches, timing) = match raw.expect.and_then(|f| cx.get(f)) {
        Some(e) => (
            regex(cx, e.reply_matches),
            self::timing(cx, e.response_time_under, e.degraded_over, timeout),
        ),
        None if raw.expect.is_some() => (None, None),
        None => (Some(None), Some(Timing::default())),
    };
    Some(TcpProbe {
        host: host?,
        port: port?,
        prefer_ip: cx.opt(raw.prefer_ip).unwrap_or(IpFamily::Ipv4),
        send: cx.opt(raw.send),
        reply_matches: reply_matches?,
        timing: timing?,
    })
}

fn tls(cx: &Cx, raw: RawTls, timeout: Duration) -> Option<TlsProbe> {
    let host = host(cx, raw.host);
    let port = port(cx, raw.port, Some(TLS_PORT));
    let server_name = server_name(cx, raw.server_name);
    let expect = match raw.expect {
        Some(f) => Some(cx.get(f)?),
        None => None,
    };
    let (certificate_valid_for, min_version, timing) = match expect {
        Some(e) => (
            cx.opt(e.certificate_valid_for).map(|d| d.0),
            cx.opt(e.min_version),
            self::timing(cx, e.response_time_under, e.degraded_over, timeout),
        ),
        None => (None, None, Some(Timing::default())),
    };
    Some(TlsProbe {
        host: host?,
        port: port?,
        server_name: server_name?,
        ca_file: cx.opt(raw.ca_file).map(PathBuf::from),
        prefer_ip: cx.opt(raw.prefer_ip).unwrap_or(IpFamily::Ipv4),
        certificate_valid_for,
        min_version,
        timing: timing?,
    })
}

fn dns(cx: &Cx, raw: RawDns, timeout: Duration) -> Option<DnsProbe> {
    let name = cx.get(raw.name).and_then(|n| {
        if is_host(n.trim_end_matches('.')) {
            Some(n)
        } else {
            cx.error(
                raw.name.id,
                format!(
                    "expected a DNS name such as `example.com`, found `{}`",
                    clip(&n, 60)
                ),
            );
            None
        }
    });
    let server = match raw.server {
        None => Some(None),
        Some(f) => cx.get(f).and_then(|text| match dns_server(&text) {
            Some(s) => Some(Some(s)),
            None => {
                cx.error(
                    f.id,
                    format!(
                        "expected a DNS server as `host`, `host:port` or `[ipv6]:port`, found `{}`",
                        clip(&text, 60)
                    ),
                );
                None
            }
        }),
    };
    let expect = match raw.expect {
        Some(f) => Some(cx.get(f)?),
        None => None,
    };
    let list = |f: Option<Field<Vec<Field<String>>>>| -> Option<Option<Vec<String>>> {
        let Some(f) = f else { return Some(None) };
        let items = cx.get(f)?;
        let values: Vec<String> = items.iter().filter_map(|i| cx.get(*i)).collect();
        (values.len() == items.len()).then_some(Some(values))
    };
    let (rcode, include, equal, matches, min_answers, timing) = match expect {
        Some(e) => (
            cx.opt(e.rcode).unwrap_or(Rcode::NoError),
            list(e.answers_include),
            list(e.answers_equal),
            regex(cx, e.answers_match),
            cx.opt(e.min_answers),
            self::timing(cx, e.response_time_under, e.degraded_over, timeout),
        ),
        None => (
            Rcode::NoError,
            Some(None),
            Some(None),
            Some(None),
            None,
            Some(Timing::default()),
        ),
    };
    Some(DnsProbe {
        name: name?,
        record_type: cx.opt(raw.record_type).unwrap_or(RecordType::A),
        server: server?,
        protocol: cx.opt(raw.protocol).unwrap_or(DnsProtocol::Udp),
        rcode,
        answers_include: include?.unwrap_or_default(),
        answers_equal: equal?,
        answers_match: matches?,
        min_answers,
        timing: timing?,
    })
}

/// `host`, `host:port`, `ipv4:port`, `ipv6` or `[ipv6]:port`.
fn dns_server(text: &str) -> Option<DnsServer> {
    if let Ok(sa) = text.parse::<std::net::SocketAddr>() {
        return (sa.port() > 0).then(|| DnsServer {
            host: sa.ip().to_string(),
            port: sa.port(),
        });
    }
    if let Ok(ip) = text.parse::<std::net::IpAddr>() {
        return Some(DnsServer {
            host: ip.to_string(),
            port: DNS_PORT,
        });
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().ok().filter(|p| *p > 0)?),
        None => (text, DNS_PORT),
    };
    is_host(host).then(|| DnsServer {
        host: host.to_string(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_servers_parse_in_every_written_form() {
        let s = |h: &str, p| {
            Some(DnsServer {
                host: h.into(),
                port: p,
            })
        };
        assert_eq!(dns_server("10.0.0.2:53"), s("10.0.0.2", 53));
        assert_eq!(dns_server("10.0.0.2"), s("10.0.0.2", 53));
        assert_eq!(dns_server("[::1]:5353"), s("::1", 5353));
        assert_eq!(dns_server("::1"), s("::1", 53));
        assert_eq!(
            dns_server("ns1.example.com:5353"),
            s("ns1.example.com", 5353)
        );
        assert_eq!(dns_server("ns1.example.com:0"), None);
        assert_eq!(dns_server("udp://x"), None);
    }

    #[test]
    fn hosts_refuse_schemes_ports_and_spaces() {
        assert!(is_host("example.com") && is_host("127.0.0.1") && is_host("::1") && is_host("db"));
        assert!(
            !is_host("http://x")
                && !is_host("a b")
                && !is_host("a:80")
                && !is_host("")
                && !is_host("-a")
        );
    }
}
