use super::*;

fn parse(text: &str) -> Result<Config, WebConfigError> {
    Config::parse(Path::new("/etc/cs/web.yml"), text)
}

/// The error text of a config that must fail.
fn error(text: &str) -> String {
    match parse(text) {
        Ok(c) => panic!("accepted {text:?}: {c:?}"),
        Err(e) => e.to_string(),
    }
}

fn hash(cost: u32) -> String {
    bcrypt::hash("pw", cost).unwrap()
}

#[test]
fn an_empty_file_means_no_tls_and_no_auth() {
    let c = parse("").unwrap();
    assert!(c.tls.is_none() && c.users.is_none() && c.headers.is_empty());
    let c = parse("# nothing\n").unwrap();
    assert!(!c.authenticates());
}

#[test]
fn syntax_errors_name_the_file_the_key_and_the_line() {
    let e = error("tls_server_config:\n  cert_fiel: a.pem\n");
    assert!(e.starts_with("web config /etc/cs/web.yml: "), "{e}");
    assert!(e.contains("cert_fiel") && e.contains("line 2"), "{e}");
    let e = error("basic_auth_user:\n  a: b\n");
    assert!(e.contains("basic_auth_user"), "{e}");
    let e = error("basic_auth_users: [a, b]\n");
    assert!(e.contains("basic_auth_users"), "{e}");
    let e = error("tls_server_config: {cert_file: [1]\n");
    assert!(e.contains("web config /etc/cs/web.yml"), "{e}");
}

#[test]
fn users_need_bcrypt_hashes() {
    let e = error("basic_auth_users:\n  alice: secret\n");
    assert!(e.contains("basic_auth_users.alice: not a bcrypt hash"), "{e}");
    let e = error(&format!("basic_auth_users:\n  'al:ice': '{}'\n", hash(4)));
    assert!(e.contains("basic_auth_users.al:ice") && e.contains("':'"), "{e}");
    let c = parse(&format!("basic_auth_users:\n  alice: '{}'\n  bob: '{}'\n", hash(4), hash(5))).unwrap();
    let users = c.users.as_ref().unwrap();
    assert_eq!(users.hashes.len(), 2);
    assert!(c.authenticates());
    // The dummy costs as much as the dearest user, and matches no password anyone sends.
    let dummy: bcrypt::HashParts = users.dummy.parse().unwrap();
    assert_eq!(dummy.get_cost(), 5);
    assert!(!bcrypt::verify("pw", &users.dummy).unwrap());
    // The htpasswd flavour ($2y$) is accepted too.
    let y = hash(4).replacen("$2b$", "$2y$", 1);
    assert!(parse(&format!("basic_auth_users:\n  alice: '{y}'\n")).is_ok());
    // An empty map is no auth.
    assert!(parse("basic_auth_users: {}\n").unwrap().users.is_none());
}

#[test]
fn tls_settings_are_checked_before_any_file_is_trusted() {
    let e = error("tls_server_config:\n  key_file: k.pem\n");
    assert!(e.contains("tls_server_config.cert_file: missing"), "{e}");
    let e = error("tls_server_config:\n  cert_file: c.pem\n  cert: inline\n");
    assert!(e.contains("tls_server_config.cert_file: set either"), "{e}");
    // Relative names are taken from the config file's folder.
    let e = error("tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n");
    assert!(e.contains("tls_server_config.cert_file: cannot read /etc/cs/c.pem"), "{e}");
    let e = error("tls_server_config:\n  cert: 'not pem'\n  key: 'not pem'\n");
    assert!(e.contains("tls_server_config.cert_file: holds no PEM certificate"), "{e}");
    // A TLS section with nothing that switches TLS on serves plain HTTP, as the toolkit does.
    assert!(parse("tls_server_config:\n  min_version: TLS13\n").unwrap().tls.is_none());
}

#[test]
fn versions_and_client_auth_types_are_closed_sets() {
    // Checked before any file is read: the certificate here is never looked at.
    let tls = |extra: &str| error(&format!("tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n{extra}"));
    let e = tls("  min_version: TLS14\n");
    assert!(e.contains("tls_server_config.min_version: unknown version \"TLS14\"; one of TLS12, TLS13"), "{e}");
    let e = tls("  min_version: TLS10\n");
    assert!(e.contains("tls_server_config.min_version: not supported"), "{e}");
    let e = tls("  min_version: TLS13\n  max_version: TLS12\n");
    assert!(e.contains("tls_server_config.min_version: is above max_version"), "{e}");
    let e = tls("  client_auth_type: RequireAndVerifyClientCert\n");
    assert!(e.contains("tls_server_config.client_auth_type: RequireAndVerifyClientCert needs client_ca_file"), "{e}");
    let e = tls("  client_ca_file: ca.pem\n");
    assert!(
        e.contains("tls_server_config.client_auth_type: a client CA is set but client_auth_type is NoClientCert"),
        "{e}"
    );
    let e = tls("  client_auth_type: RequireAnyClientCert\n");
    assert!(e.contains("tls_server_config.client_auth_type: RequireAnyClientCert is not supported"), "{e}");
    let e = tls("  client_auth_type: Sometimes\n");
    assert!(e.contains("tls_server_config.client_auth_type: unknown \"Sometimes\""), "{e}");
    let e =
        tls("  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n  client_allowed_sans: [a]\n");
    assert!(e.contains("tls_server_config.client_allowed_sans: not supported"), "{e}");
    // Valid choices get as far as reading the files.
    let e = tls("  min_version: TLS13\n  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.pem\n");
    assert!(e.contains("cannot read /etc/cs/c.pem"), "{e}");
}

#[test]
fn http_server_config_headers_are_the_toolkits() {
    let c = parse(
        "http_server_config:\n  http2: true\n  headers:\n    X-Frame-Options: deny\n    Strict-Transport-Security: max-age=31536000\n",
    )
    .unwrap();
    let names: Vec<&str> = c.headers.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["strict-transport-security", "x-frame-options"]);
    assert_eq!(c.ignored.len(), 1, "{:?}", c.ignored);
    assert!(c.ignored[0].contains("http2"));
    let e = error("http_server_config:\n  headers:\n    X-Frame-Options: allow\n");
    assert!(e.contains("http_server_config.headers.X-Frame-Options: expected one of deny, sameorigin"), "{e}");
    let e = error("http_server_config:\n  headers:\n    Set-Cookie: a\n");
    assert!(e.contains("http_server_config.headers.Set-Cookie: this header cannot be set"), "{e}");
    let c = parse("rate_limit:\n  burst: 10\n  interval: 1s\n").unwrap();
    assert!(c.ignored[0].contains("rate_limit"));
}

#[test]
fn exposure_is_told_for_non_loopback_addresses_only() {
    let open = Config::default();
    assert!(open.exposure("127.0.0.1:9477".parse().unwrap()).is_none());
    assert!(open.exposure("[::1]:9477".parse().unwrap()).is_none());
    let msg = open.exposure("0.0.0.0:9477".parse().unwrap()).unwrap();
    assert!(msg.contains("without TLS or authentication"), "{msg}");
    let users = parse(&format!("basic_auth_users:\n  a: '{}'\n", hash(4))).unwrap();
    let msg = users.exposure("192.0.2.1:9477".parse().unwrap()).unwrap();
    assert!(msg.contains("without TLS"), "{msg}");
}
