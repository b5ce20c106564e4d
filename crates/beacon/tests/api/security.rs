//! Tokens from an identity provider (`--auth jwks`): forged, expired and misaddressed tokens,
//! permissions in `scp` and `roles`, and the key set's fetches, rotation and outages.
//!
//! The tests make their own RSA and P-256 keys and sign tokens with jsonwebtoken. The key set
//! comes from a file or from a small HTTP server on 127.0.0.1 that counts its fetches. Every
//! rejected request is checked for its status, its Graph error code, a message that names the
//! failed check, and an unchanged collection.

use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::helpers::*;

/// The partner tenant of most tokens here.
const TENANT: &str = "c0ffee00-1234-4abc-8def-0123456789ab";

/// A second partner tenant.
const OTHER_TENANT: &str = "3f2a9c41-7d6e-4b58-a0c3-9e1b2d4f6a87";

/// The audience the test servers accept, in the form of an Application ID URI.
const AUDIENCE: &str = "api://beacon-tests";

/// Returns the v2.0 issuer of [`TENANT`].
fn issuer() -> String {
    format!("https://login.microsoftonline.com/{TENANT}/v2.0")
}

/// A signing key with its JSON Web Key.
struct TestKey {
    kid: String,
    algorithm: Algorithm,
    encoding: EncodingKey,
    jwk: Value,
    /// The public key as a PEM `PUBLIC KEY` block, for the HMAC confusion attack.
    public_pem: Vec<u8>,
    /// The public key as SubjectPublicKeyInfo DER.
    public_der: Vec<u8>,
}

impl TestKey {
    fn rsa(kid: &str) -> TestKey {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let private: Pkcs8V1Der<'_> = pair.as_der().unwrap();
        let private_pem = pem::encode(&pem::Pem::new("PRIVATE KEY", private.as_ref().to_vec()));
        let public = pair.public_key();
        let public_der: PublicKeyX509Der<'_> = public.as_der().unwrap();
        let public_der = public_der.as_ref().to_vec();
        let jwk = json!({
            "kty": "RSA",
            "use": "sig",
            "kid": kid,
            "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
        });
        TestKey {
            kid: kid.to_owned(),
            algorithm: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_pem(private_pem.as_bytes()).unwrap(),
            jwk,
            public_pem: pem::encode(&pem::Pem::new("PUBLIC KEY", public_der.clone())).into_bytes(),
            public_der,
        }
    }

    fn ec(kid: &str) -> TestKey {
        let document =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, document.as_ref()).unwrap();
        let point = pair.public_key().as_ref().to_vec();
        let private_pem = pem::encode(&pem::Pem::new("PRIVATE KEY", document.as_ref().to_vec()));
        let jwk = json!({
            "kty": "EC",
            "use": "sig",
            "crv": "P-256",
            "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        });
        TestKey {
            kid: kid.to_owned(),
            algorithm: Algorithm::ES256,
            encoding: EncodingKey::from_ec_pem(private_pem.as_bytes()).unwrap(),
            jwk,
            public_pem: Vec::new(),
            public_der: point,
        }
    }

    /// Signs `claims` with this key and its own `kid`.
    fn sign(&self, claims: &Value) -> String {
        self.sign_as(Some(&self.kid), claims)
    }

    /// Signs `claims` with this key, naming `kid` in the header.
    fn sign_as(&self, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }

    /// Returns the JWK with extra members, such as Entra ID's `issuer`.
    fn jwk_with(&self, extra: &Value) -> Value {
        let mut jwk = self.jwk.clone();
        for (name, value) in extra.as_object().unwrap() {
            jwk[name] = value.clone();
        }
        jwk
    }
}

/// Keys made once per test run, since RSA key generation takes a while.
struct Keys {
    rsa: [TestKey; 4],
    ec: TestKey,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        rsa: [
            TestKey::rsa("rsa-1"),
            TestKey::rsa("rsa-2"),
            TestKey::rsa("rsa-3"),
            TestKey::rsa("rsa-4"),
        ],
        ec: TestKey::ec("ec-1"),
    })
}

/// Builds a key set document.
fn key_set(jwks: &[&Value]) -> Value {
    json!({ "keys": jwks })
}

fn now() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap()
}

/// Builds the claims of a valid delegated token for [`TENANT`] with read and write rights.
fn claims() -> Value {
    let now = now();
    json!({
        "iss": issuer(),
        "aud": AUDIENCE,
        "sub": "security-test-user",
        "tid": TENANT,
        "scp": READ_WRITE,
        "iat": now - 60,
        "nbf": now - 60,
        "exp": now + 3600,
        "ver": "2.0",
    })
}

/// Returns [`claims`] with some members replaced, or removed where the value is null.
fn claims_with(changes: &Value) -> Value {
    let mut claims = claims();
    for (name, value) in changes.as_object().unwrap() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    claims
}

fn base64url_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// Splits a token into its header, payload and signature parts.
fn token_parts(token: &str) -> [&str; 3] {
    let parts: Vec<&str> = token.split('.').collect();
    [parts[0], parts[1], parts[2]]
}

/// Writes a key set file in `dir` and returns its path as text.
fn write_key_set(dir: &std::path::Path, document: &Value) -> String {
    let path = dir.join("jwks.json");
    std::fs::write(&path, document.to_string()).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Builds the jwks mode options for a key set file, with the test issuer and audience.
fn file_args(path: &str) -> Vec<String> {
    ["--auth", "jwks", "--jwks-file", path, "--issuer", &issuer(), "--audience", AUDIENCE]
        .map(str::to_owned)
        .to_vec()
}

async fn start_server(args: &[String]) -> TestServer {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    TestServer::start_with(&args).await
}

/// Sends `method` to `path` with `token`. POST and PUT carry a complete seed view body, and
/// PATCH changes one property.
async fn send(server: &TestServer, method: Method, path: &str, token: &str) -> reqwest::Response {
    let mut request = server.client.request(method.clone(), server.url(path)).bearer_auth(token);
    if method == Method::POST || method == Method::PUT {
        request = request.json(&seed_example());
    } else if method == Method::PATCH {
        request = request.json(&json!({"numberOfErrorDevices": 42}));
    }
    request.send().await.unwrap()
}

/// Lists the seed view's rows of `token`'s tenant.
async fn rows(server: &TestServer, token: &str) -> Vec<Value> {
    let response = send(server, Method::GET, SEED, token).await;
    assert_eq!(response.status(), 200, "listing with the control token");
    let page: Value = response.json().await.unwrap();
    page["value"].as_array().unwrap().clone()
}

/// Asserts a `401 InvalidAuthenticationToken` whose message contains `fragment` and does not
/// repeat the token or its signature.
async fn assert_rejected(response: reqwest::Response, fragment: &str, token: &str, case: &str) {
    let status = response.status().as_u16();
    if status != 401 {
        let body = response.text().await.unwrap_or_default();
        panic!("{case}: expected status 401, got {status} with body {body}");
    }
    assert!(response.headers().contains_key("www-authenticate"), "{case}: no WWW-Authenticate");
    let message = assert_graph_error(response, 401, "InvalidAuthenticationToken").await;
    assert!(message.contains(fragment), "{case}: message {message:?} lacks {fragment:?}");
    let signature = token.rsplit('.').next().unwrap_or("");
    assert!(token.is_empty() || !message.contains(token), "{case}: the message repeats the token");
    assert!(
        signature.len() < 8 || !message.contains(signature),
        "{case}: the message repeats the signature"
    );
}

/// Asserts a `503 ServiceUnavailable` with a `Retry-After` of whole seconds, and returns it.
async fn assert_keys_unavailable(response: reqwest::Response, case: &str) -> u64 {
    let status = response.status().as_u16();
    assert_eq!(status, 503, "{case}");
    let retry_after = response.headers().get("retry-after").unwrap_or_else(|| {
        panic!("{case}: no Retry-After header");
    });
    let seconds: u64 = retry_after.to_str().unwrap().parse().unwrap();
    let message = assert_graph_error(response, 503, "ServiceUnavailable").await;
    assert!(message.contains("keys"), "{case}: message {message:?}");
    seconds
}

/// Runs `beacon` with `args` and returns its output, failing the test if it still runs after
/// 30 seconds, which means it started serving.
fn run_to_exit(args: &[&str]) -> Output {
    let mut child = Command::new(beacon_binary())
        .args(args)
        .env_remove("BEACON_AUTH")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("beacon {args:?} did not exit; it should have rejected its options");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// A key set server on 127.0.0.1 that counts the requests it serves.
struct KeyServer {
    url: String,
    document: Arc<Mutex<Value>>,
    status: Arc<AtomicU16>,
    fetches: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl KeyServer {
    async fn start(document: Value) -> KeyServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/discovery/v2.0/keys", listener.local_addr().unwrap());
        let document = Arc::new(Mutex::new(document));
        let status = Arc::new(AtomicU16::new(200));
        let fetches = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let (document, status, fetches) =
                (Arc::clone(&document), Arc::clone(&status), Arc::clone(&fetches));
            async move {
                loop {
                    let Ok((mut stream, _)) = listener.accept().await else { continue };
                    let (document, status, fetches) =
                        (Arc::clone(&document), Arc::clone(&status), Arc::clone(&fetches));
                    tokio::spawn(async move {
                        // Read the request head; key set requests have no body.
                        let mut head = Vec::new();
                        let mut buffer = [0_u8; 1024];
                        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16384 {
                            match stream.read(&mut buffer).await {
                                Ok(0) | Err(_) => return,
                                Ok(read) => head.extend_from_slice(&buffer[..read]),
                            }
                        }
                        fetches.fetch_add(1, Ordering::SeqCst);
                        let status = status.load(Ordering::SeqCst);
                        let body = document.lock().unwrap().to_string();
                        let response = format!(
                            "HTTP/1.1 {status} Test\r\nContent-Type: application/json\r\n\
                             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = stream.write_all(response.as_bytes()).await;
                        let _ = stream.shutdown().await;
                    });
                }
            }
        });
        KeyServer { url, document, status, fetches, task }
    }

    fn serve(&self, document: Value) {
        *self.document.lock().unwrap() = document;
    }

    fn answer_with_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Stops accepting connections and closes the port.
    async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    /// Builds the jwks mode options for this server, with the test issuer and audience.
    fn args(&self, min_refetch: &str) -> Vec<String> {
        [
            "--auth",
            "jwks",
            "--jwks-url",
            &self.url,
            "--jwks-min-refetch",
            min_refetch,
            "--issuer",
            &issuer(),
            "--audience",
            AUDIENCE,
        ]
        .map(str::to_owned)
        .to_vec()
    }
}

#[tokio::test]
async fn forged_tokens_get_401_naming_the_check() {
    let keys = keys();
    let (rsa, outsider, ec) = (&keys.rsa[0], &keys.rsa[1], &keys.ec);
    let dir = tempfile::tempdir().unwrap();
    let path = write_key_set(dir.path(), &key_set(&[&rsa.jwk, &ec.jwk]));
    let server = start_server(&file_args(&path)).await;
    let valid = rsa.sign(&claims());
    let created = send(&server, Method::POST, SEED, &valid).await;
    assert_eq!(created.status(), 201, "the control token was rejected");
    let id = created.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let before = rows(&server, &valid).await;

    // Tokens that only differ from valid ones where an attacker would change them.
    let [header, payload, signature] = token_parts(&valid);
    let mut flipped = signature.as_bytes().to_vec();
    flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let raised = base64url_json(&claims_with(&json!({"tid": OTHER_TENANT})));
    let read_only = rsa.sign(&claims_with(&json!({"tid": OTHER_TENANT, "scp": READ})));
    let [other_header, other_payload, other_signature] = token_parts(&read_only);
    let ec_token = ec.sign(&claims());
    let [ec_header, ..] = token_parts(&ec_token);
    let header_with = |members: Value| base64url_json(&members);
    let hmac = |algorithm: Algorithm, secret: &[u8]| {
        let mut header = Header::new(algorithm);
        header.kid = Some(rsa.kid.clone());
        jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(secret).unwrap())
            .unwrap()
    };
    let modulus = URL_SAFE_NO_PAD.decode(rsa.jwk["n"].as_str().unwrap()).unwrap();
    let other_algorithm = |algorithm: Algorithm| {
        let mut header = Header::new(algorithm);
        header.kid = Some(rsa.kid.clone());
        jsonwebtoken::encode(&header, &claims(), &rsa.encoding).unwrap()
    };

    let cases: Vec<(&str, String, &str)> = vec![
        ("a changed signature", format!("{header}.{payload}.{flipped}"), "signature is invalid"),
        (
            "claims moved to another tenant",
            format!("{header}.{raised}.{signature}"),
            "signature is invalid",
        ),
        (
            "one token's header and signature with another's payload",
            format!("{header}.{other_payload}.{signature}"),
            "signature is invalid",
        ),
        (
            "one token's header with another's payload and signature",
            format!("{other_header}.{payload}.{other_signature}"),
            "signature is invalid",
        ),
        (
            "an ES256 header on an RS256 token",
            format!("{ec_header}.{payload}.{signature}"),
            "signature is invalid",
        ),
        (
            "a known kid signed by another key",
            outsider.sign_as(Some(&rsa.kid), &claims()),
            "signature is invalid",
        ),
        ("a kid not in the key set", outsider.sign(&claims()), "not in this service's key set"),
        (
            "an EC key's kid on an RS256 token",
            rsa.sign_as(Some(&ec.kid), &claims()),
            "does not match the type of the key",
        ),
        (
            "alg none without a signature",
            format!("{}.{payload}.", header_with(json!({"alg": "none", "kid": rsa.kid}))),
            "does not accept: none.",
        ),
        (
            "alg none with the original signature",
            format!(
                "{}.{payload}.{signature}",
                header_with(json!({"alg": "none", "kid": rsa.kid}))
            ),
            "does not accept: none.",
        ),
        (
            "HS256 keyed with the PEM public key",
            hmac(Algorithm::HS256, &rsa.public_pem),
            "does not accept: HS256.",
        ),
        (
            "HS256 keyed with the DER public key",
            hmac(Algorithm::HS256, &rsa.public_der),
            "does not accept: HS256.",
        ),
        (
            "HS256 keyed with the modulus",
            hmac(Algorithm::HS256, &modulus),
            "does not accept: HS256.",
        ),
        (
            "HS512 keyed with the PEM public key",
            hmac(Algorithm::HS512, &rsa.public_pem),
            "does not accept: HS512.",
        ),
        ("RS384 by the right key", other_algorithm(Algorithm::RS384), "does not accept: RS384."),
        ("PS256 by the right key", other_algorithm(Algorithm::PS256), "does not accept: PS256."),
        (
            "a critical header extension",
            format!(
                "{}.{payload}.{signature}",
                header_with(json!({"alg": "RS256", "kid": rsa.kid, "crit": ["exp"]}))
            ),
            "critical",
        ),
        (
            "a kid that is not a string",
            format!("{}.{payload}.{signature}", header_with(json!({"alg": "RS256", "kid": 1}))),
            "well-formed",
        ),
        (
            "a header that is not JSON",
            format!("{}.{payload}.{signature}", URL_SAFE_NO_PAD.encode("alg=RS256")),
            "well-formed",
        ),
        (
            "claims that are not JSON",
            format!("{header}.{}.{signature}", URL_SAFE_NO_PAD.encode("tid")),
            "well-formed",
        ),
        (
            "a signature that is not base64url",
            format!("{header}.{payload}.{signature}+"),
            "well-formed",
        ),
        ("two parts", format!("{header}.{payload}"), "well-formed"),
        ("four parts", format!("{valid}.{signature}"), "well-formed"),
        ("a word", "garbage".to_owned(), "well-formed"),
    ];

    for (case, token, fragment) in &cases {
        for (method, path) in [
            (Method::GET, SEED.to_owned()),
            (Method::POST, SEED.to_owned()),
            (Method::PATCH, format!("{SEED}/{id}")),
            (Method::DELETE, format!("{SEED}/{id}")),
        ] {
            let case = format!("{method} {path} with {case}");
            let response = send(&server, method, &path, token).await;
            assert_rejected(response, fragment, token, &case).await;
        }
    }
    assert_eq!(rows(&server, &valid).await, before, "a rejected request changed the rows");
}

#[tokio::test]
async fn token_without_kid_needs_single_key() {
    let keys = keys();
    let (first, second) = (&keys.rsa[0], &keys.rsa[1]);
    let dir = tempfile::tempdir().unwrap();

    // With one RSA key (and an EC key), an RS256 token without kid can only mean that key.
    let path = write_key_set(dir.path(), &key_set(&[&first.jwk, &keys.ec.jwk]));
    let server = start_server(&file_args(&path)).await;
    let response = send(&server, Method::GET, SEED, &first.sign_as(None, &claims())).await;
    assert_eq!(response.status(), 200, "a single RS256 key");
    drop(server);

    // With two RSA keys it is ambiguous.
    let path = write_key_set(dir.path(), &key_set(&[&first.jwk, &second.jwk]));
    let server = start_server(&file_args(&path)).await;
    let token = first.sign_as(None, &claims());
    let response = send(&server, Method::POST, SEED, &token).await;
    assert_rejected(response, "no key id (kid)", &token, "two RS256 keys").await;
    assert!(rows(&server, &first.sign(&claims())).await.is_empty());
}

#[tokio::test]
async fn time_claims_allow_clock_skew() {
    let rsa = &keys().rsa[0];
    let dir = tempfile::tempdir().unwrap();
    let path = write_key_set(dir.path(), &key_set(&[&rsa.jwk]));
    let mut args = file_args(&path);
    args.extend(["--clock-skew".to_owned(), "5m".to_owned()]);
    let server = start_server(&args).await;
    let valid = rsa.sign(&claims());
    let now = now();

    // Each margin is minutes away from the 5 minute skew, so test delays cannot matter.
    let accepted = [
        ("expired 2 minutes ago", json!({"iat": now - 3600, "exp": now - 120})),
        ("valid from 2 minutes on", json!({"nbf": now + 120})),
        ("without nbf", json!({"nbf": null})),
        ("with a fractional exp", json!({"exp": now as f64 + 3600.5})),
    ];
    for (case, changes) in accepted {
        let response = send(&server, Method::POST, SEED, &rsa.sign(&claims_with(&changes))).await;
        assert_eq!(response.status(), 201, "a token {case}");
    }
    let before = rows(&server, &valid).await;
    assert_eq!(before.len(), 4);

    let rejected = [
        ("expired 10 minutes ago", json!({"iat": now - 3600, "exp": now - 600}), "has expired"),
        ("expired a day ago", json!({"iat": now - 90000, "exp": now - 86400}), "has expired"),
        ("valid from 10 minutes on", json!({"nbf": now + 600}), "not valid yet"),
        ("without exp", json!({"exp": null}), "no expiry time (exp) claim"),
        (
            "with exp as text",
            json!({"exp": (now + 3600).to_string()}),
            "expiry time (exp) claim must be",
        ),
        ("with nbf as text", json!({"nbf": "soon"}), "not-before time (nbf) claim must be"),
    ];
    for (case, changes, fragment) in rejected {
        let token = rsa.sign(&claims_with(&changes));
        for method in [Method::GET, Method::POST] {
            let case = format!("{method} with a token {case}");
            let response = send(&server, method, SEED, &token).await;
            assert_rejected(response, fragment, &token, &case).await;
        }
    }
    assert_eq!(rows(&server, &valid).await, before, "a rejected request changed the rows");
}

#[tokio::test]
async fn issuer_audience_and_tenant_checked() {
    let rsa = &keys().rsa[0];
    let dir = tempfile::tempdir().unwrap();
    let path = write_key_set(dir.path(), &key_set(&[&rsa.jwk]));
    let server = start_server(&file_args(&path)).await;
    let valid = rsa.sign(&claims());

    // The audience may be an array that names this service among others.
    let listed = rsa.sign(&claims_with(&json!({"aud": ["api://other", AUDIENCE]})));
    assert_eq!(send(&server, Method::POST, SEED, &listed).await.status(), 201, "aud array");
    let before = rows(&server, &valid).await;

    let v1_issuer = format!("https://sts.windows.net/{TENANT}/");
    let other_issuer = format!("https://login.microsoftonline.com/{OTHER_TENANT}/v2.0");
    let cases = [
        ("another tenant's issuer", json!({"iss": other_issuer}), "issuer (iss) is not accepted"),
        ("the v1.0 issuer", json!({"iss": v1_issuer}), "issuer (iss) is not accepted"),
        (
            "an issuer with a trailing slash",
            json!({"iss": format!("{}/", issuer())}),
            "issuer (iss) is not accepted",
        ),
        ("no issuer", json!({"iss": null}), "no issuer (iss) claim"),
        ("another audience", json!({"aud": "api://other"}), "audience (aud) is not this service"),
        (
            "an audience array without this service",
            json!({"aud": ["api://a", "api://b"]}),
            "audience (aud) is not this service",
        ),
        ("no audience", json!({"aud": null}), "no audience (aud) claim"),
        ("no tenant", json!({"tid": null}), "no tenant id (tid) claim"),
        (
            "a tenant that is not a GUID",
            json!({"tid": "contoso.onmicrosoft.com"}),
            "tenant id (tid) claim must be a GUID",
        ),
        ("a tenant that is a number", json!({"tid": 42}), "tenant id (tid) claim must be a GUID"),
        (
            "roles that are not an array",
            json!({"scp": null, "roles": READ_WRITE}),
            "application permissions (roles) claim must be",
        ),
        (
            "scp that is not a string",
            json!({"scp": [READ_WRITE]}),
            "delegated permissions (scp) claim must be",
        ),
    ];
    for (case, changes, fragment) in cases {
        let token = rsa.sign(&claims_with(&changes));
        for method in [Method::GET, Method::POST] {
            let case = format!("{method} with {case}");
            let response = send(&server, method, SEED, &token).await;
            assert_rejected(response, fragment, &token, &case).await;
        }
    }
    assert_eq!(rows(&server, &valid).await, before, "a rejected request changed the rows");
}

#[tokio::test]
async fn permissions_come_from_scp_or_roles() {
    let rsa = &keys().rsa[0];
    let dir = tempfile::tempdir().unwrap();
    let path = write_key_set(dir.path(), &key_set(&[&rsa.jwk]));
    let server = start_server(&file_args(&path)).await;
    let valid = rsa.sign(&claims());

    // Writers: a delegated token among other scopes, and an application token.
    let delegated = rsa.sign(&claims_with(&json!({"scp": format!("openid {READ_WRITE} profile")})));
    let application = rsa.sign(&claims_with(&json!({"scp": null, "roles": [READ_WRITE]})));
    for (case, token) in [("scp", &delegated), ("roles", &application)] {
        let response = send(&server, Method::POST, SEED, token).await;
        assert_eq!(response.status(), 201, "a create with ReadWrite in {case}");
    }
    let before = rows(&server, &valid).await;
    let id = before[0]["id"].as_str().unwrap().to_owned();

    // Readers read and cannot change anything.
    let readers = [
        ("Read in scp", rsa.sign(&claims_with(&json!({"scp": READ})))),
        ("Read in roles", rsa.sign(&claims_with(&json!({"scp": null, "roles": [READ]})))),
    ];
    for (case, token) in &readers {
        assert_eq!(rows(&server, token).await, before, "a list with {case}");
        for (method, path) in [
            (Method::POST, SEED.to_owned()),
            (Method::PATCH, format!("{SEED}/{id}")),
            (Method::PUT, format!("{SEED}/{id}")),
            (Method::DELETE, format!("{SEED}/{id}")),
        ] {
            let response = send(&server, method.clone(), &path, token).await;
            let message = assert_graph_error(response, 403, "Authorization_RequestDenied").await;
            assert!(message.contains(READ_WRITE), "{method} with {case}: {message}");
        }
    }

    // Tokens without either permission cannot even read.
    let strangers = [
        ("no scp or roles", rsa.sign(&claims_with(&json!({"scp": null})))),
        ("another scope", rsa.sign(&claims_with(&json!({"scp": "User.Read"})))),
        (
            "a permission as a substring",
            rsa.sign(&claims_with(&json!({"scp": format!("{READ}x")}))),
        ),
        ("an empty roles array", rsa.sign(&claims_with(&json!({"scp": null, "roles": []})))),
    ];
    for (case, token) in &strangers {
        for (method, needed) in [(Method::GET, READ), (Method::POST, READ_WRITE)] {
            let response = send(&server, method.clone(), SEED, token).await;
            let message = assert_graph_error(response, 403, "Authorization_RequestDenied").await;
            assert!(message.contains(needed), "{method} with {case}: {message}");
        }
    }
    assert_eq!(rows(&server, &valid).await, before, "a denied request changed the rows");
}

#[tokio::test]
async fn tenant_issuer_template_keeps_tenants_apart() {
    let keys = keys();
    let (common, pinned) = (&keys.rsa[0], &keys.ec);
    let template = "https://login.microsoftonline.com/{tenantid}/v2.0";
    let issuer_of = |tenant: &str| format!("https://login.microsoftonline.com/{tenant}/v2.0");
    let dir = tempfile::tempdir().unwrap();
    // As in Entra ID's common key set, a key carries the issuer it may sign for.
    let document = key_set(&[
        &common.jwk_with(&json!({"issuer": template})),
        &pinned.jwk_with(&json!({"issuer": issuer()})),
    ]);
    let path = write_key_set(dir.path(), &document);
    let args =
        ["--auth", "jwks", "--jwks-file", &path, "--issuer", template, "--audience", AUDIENCE];
    let server = TestServer::start_with(&args).await;

    let ours = common.sign(&claims());
    let theirs =
        common.sign(&claims_with(&json!({"tid": OTHER_TENANT, "iss": issuer_of(OTHER_TENANT)})));
    assert_eq!(send(&server, Method::POST, SEED, &ours).await.status(), 201);
    assert_eq!(send(&server, Method::POST, SEED, &theirs).await.status(), 201);
    let pinned_ours = pinned.sign(&claims());
    assert_eq!(send(&server, Method::POST, SEED, &pinned_ours).await.status(), 201);

    // Each tenant lists only its own rows.
    assert_eq!(rows(&server, &ours).await.len(), 2);
    assert_eq!(rows(&server, &theirs).await.len(), 1);

    let cases = [
        (
            "a tid that differs from the issuer's tenant",
            common.sign(&claims_with(&json!({"tid": OTHER_TENANT}))),
            "issuer (iss) is not accepted",
        ),
        (
            "another tenant's token from a key pinned to the first",
            pinned
                .sign(&claims_with(&json!({"tid": OTHER_TENANT, "iss": issuer_of(OTHER_TENANT)}))),
            "not the issuer of the key",
        ),
    ];
    for (case, token, fragment) in cases {
        let response = send(&server, Method::POST, SEED, &token).await;
        assert_rejected(response, fragment, &token, case).await;
    }
    assert_eq!(rows(&server, &ours).await.len(), 2);
    assert_eq!(rows(&server, &theirs).await.len(), 1);
}

#[tokio::test]
async fn key_file_reread_for_unknown_kid() {
    let keys = keys();
    let (first, second, third) = (&keys.rsa[0], &keys.rsa[1], &keys.rsa[2]);
    let dir = tempfile::tempdir().unwrap();
    let path = write_key_set(dir.path(), &key_set(&[&first.jwk]));
    let server = start_server(&file_args(&path)).await;
    let response = send(&server, Method::GET, SEED, &first.sign(&claims())).await;
    assert_eq!(response.status(), 200, "the first key");

    // The provider replaces the first key with the second.
    write_key_set(dir.path(), &key_set(&[&second.jwk]));
    let response = send(&server, Method::POST, SEED, &second.sign(&claims())).await;
    assert_eq!(response.status(), 201, "the second key after the rotation");
    let token = first.sign(&claims());
    let response = send(&server, Method::GET, SEED, &token).await;
    assert_rejected(response, "not in this service's key set", &token, "the removed key").await;

    // Within the default 30 second window the file is not read again.
    write_key_set(dir.path(), &key_set(&[&second.jwk, &third.jwk]));
    let token = third.sign(&claims());
    let response = send(&server, Method::GET, SEED, &token).await;
    assert_rejected(response, "not in this service's key set", &token, "a key added too soon")
        .await;
    assert_eq!(rows(&server, &second.sign(&claims())).await.len(), 1);
}

#[tokio::test]
async fn unusable_key_file_stops_start() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let data = data_dir.to_str().unwrap();
    let missing = dir.path().join("missing.json");
    let symmetric = write_key_set(dir.path(), &json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}));
    let issuer = issuer();

    for (case, file, fragment) in [
        ("a missing file", missing.to_str().unwrap(), "missing.json"),
        ("a set with only a symmetric key", symmetric.as_str(), "no usable signing key"),
    ] {
        let output = run_to_exit(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data,
            "--auth",
            "jwks",
            "--jwks-file",
            file,
            "--issuer",
            &issuer,
            "--audience",
            AUDIENCE,
        ]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{case}: {stderr}");
        assert!(stderr.contains(fragment), "{case}: {stderr}");
        assert!(!data_dir.exists(), "{case}: the data folder was created");
    }
}

#[test]
fn inconsistent_auth_options_are_rejected() {
    let url = "http://127.0.0.1:9/keys";
    let file = "/nonexistent/jwks.json";
    let cases: [(&str, &[&str], &str); 9] = [
        (
            "jwks without issuer",
            &["--auth", "jwks", "--jwks-url", url, "--audience", AUDIENCE],
            "--issuer",
        ),
        (
            "jwks without audience",
            &["--auth", "jwks", "--jwks-url", url, "--issuer", "i"],
            "--audience",
        ),
        (
            "jwks without a key source",
            &["--auth", "jwks", "--issuer", "i", "--audience", AUDIENCE],
            "--jwks-url <URL>|--jwks-file <PATH>",
        ),
        (
            "both key sources",
            &[
                "--auth",
                "jwks",
                "--jwks-url",
                url,
                "--jwks-file",
                file,
                "--issuer",
                "i",
                "--audience",
                AUDIENCE,
            ],
            "cannot be used with",
        ),
        (
            "a key set URL in dev mode",
            &["--jwks-url", url],
            "--jwks-url applies only with --auth jwks",
        ),
        (
            "issuer and audience in dev mode",
            &["--auth", "dev", "--issuer", "i", "--audience", AUDIENCE],
            "--issuer, --audience apply only with --auth jwks",
        ),
        (
            "a plain http key set URL",
            &[
                "--auth",
                "jwks",
                "--jwks-url",
                "http://keys.example.com/keys",
                "--issuer",
                "i",
                "--audience",
                AUDIENCE,
            ],
            "use https",
        ),
        ("a clock skew over 10 minutes", &["--clock-skew", "11m"], "at most 10m"),
        (
            "a refetch interval under a second",
            &[
                "--auth",
                "jwks",
                "--jwks-file",
                file,
                "--issuer",
                "i",
                "--audience",
                AUDIENCE,
                "--jwks-min-refetch",
                "500ms",
            ],
            "from 1s to 1day",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    for (case, options, fragment) in cases {
        let mut args =
            vec!["serve", "--listen", "127.0.0.1:0", "--data-dir", data.to_str().unwrap()];
        args.extend_from_slice(options);
        let output = run_to_exit(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{case}: {stderr}");
        assert!(stderr.contains(fragment), "{case}: {stderr}");
    }
    assert!(!data.exists(), "a rejected start created the data folder");
}

#[tokio::test]
async fn key_rotation_needs_one_fetch() {
    let keys = keys();
    let (first, second, third) = (&keys.rsa[0], &keys.rsa[1], &keys.rsa[2]);
    let key_server = KeyServer::start(key_set(&[&first.jwk])).await;
    let server = start_server(&key_server.args("1h")).await;
    assert_eq!(key_server.fetches(), 1, "the fetch at start");
    let response = send(&server, Method::POST, SEED, &first.sign(&claims())).await;
    assert_eq!(response.status(), 201, "the first key");
    assert_eq!(key_server.fetches(), 1, "a cached key needs no fetch");

    // The provider rotates: the new set has the second key and no longer the first.
    key_server.serve(key_set(&[&second.jwk]));
    let response = send(&server, Method::POST, SEED, &second.sign(&claims())).await;
    assert_eq!(response.status(), 201, "the new key after the rotation");
    assert_eq!(key_server.fetches(), 2, "the unknown kid caused one fetch");

    let old = first.sign(&claims());
    let response = send(&server, Method::POST, SEED, &old).await;
    assert_rejected(response, "not in this service's key set", &old, "the removed key").await;
    key_server.serve(key_set(&[&second.jwk, &third.jwk]));
    let early = third.sign(&claims());
    let response = send(&server, Method::POST, SEED, &early).await;
    assert_rejected(response, "not in this service's key set", &early, "a key within the window")
        .await;
    assert_eq!(key_server.fetches(), 2, "no fetch within the hour-long window");
    assert_eq!(rows(&server, &second.sign(&claims())).await.len(), 2);
}

#[tokio::test]
async fn concurrent_unknown_kids_fetch_once() {
    let keys = keys();
    let (known, outsider) = (&keys.rsa[0], &keys.rsa[3]);
    let key_server = KeyServer::start(key_set(&[&known.jwk])).await;
    let server = Arc::new(start_server(&key_server.args("1h")).await);
    assert_eq!(key_server.fetches(), 1, "the fetch at start");

    // Twenty requests at once: ten share one unknown kid, ten have one each.
    let mut requests = Vec::new();
    for i in 0..20 {
        let kid = if i < 10 { "unknown".to_owned() } else { format!("unknown-{i}") };
        let token = outsider.sign_as(Some(&kid), &claims());
        let server = Arc::clone(&server);
        requests.push(tokio::spawn(async move {
            let response = send(&server, Method::POST, SEED, &token).await;
            assert_rejected(response, "not in this service's key set", &token, &kid).await;
        }));
    }
    for request in requests {
        request.await.unwrap();
    }
    assert_eq!(key_server.fetches(), 2, "twenty requests with unknown kids");

    for i in 0..5 {
        let token = outsider.sign_as(Some(&format!("later-{i}")), &claims());
        let response = send(&server, Method::GET, SEED, &token).await;
        assert_rejected(response, "not in this service's key set", &token, "a later kid").await;
    }
    assert_eq!(key_server.fetches(), 2, "unknown kids within the window");
    assert!(rows(&server, &known.sign(&claims())).await.is_empty());
}

#[tokio::test]
async fn short_refetch_window_allows_rotation() {
    let keys = keys();
    let (first, second) = (&keys.rsa[0], &keys.rsa[1]);
    let key_server = KeyServer::start(key_set(&[&first.jwk])).await;
    let server = start_server(&key_server.args("1s")).await;

    // The second key arrives at the key server only after the server has looked for it.
    let token = second.sign(&claims());
    let response = send(&server, Method::POST, SEED, &token).await;
    assert_rejected(response, "not in this service's key set", &token, "before the rotation").await;
    assert_eq!(key_server.fetches(), 2);
    key_server.serve(key_set(&[&second.jwk]));

    // Once the one second window has passed, the unknown kid is looked up again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let response = send(&server, Method::POST, SEED, &token).await;
    assert_eq!(response.status(), 201, "after the window");
    assert_eq!(key_server.fetches(), 3);
}

#[tokio::test]
async fn unreachable_key_server_gives_503() {
    let keys = keys();
    let (cached, missing) = (&keys.rsa[0], &keys.rsa[1]);
    let key_server = KeyServer::start(key_set(&[&cached.jwk])).await;
    let server = start_server(&key_server.args("1h")).await;
    let valid = cached.sign(&claims());
    assert_eq!(send(&server, Method::POST, SEED, &valid).await.status(), 201);
    let before = rows(&server, &valid).await;
    key_server.stop().await;

    let unknown = missing.sign(&claims());
    for attempt in ["first", "second"] {
        for method in [Method::GET, Method::POST] {
            let case = format!("{method}, {attempt} attempt with an uncached kid");
            let response = send(&server, method, SEED, &unknown).await;
            let retry_after = assert_keys_unavailable(response, &case).await;
            assert!((1..=3600).contains(&retry_after), "{case}: Retry-After {retry_after}");
        }

        // The key fetched before the outage keeps working.
        let response = send(&server, Method::POST, SEED, &valid).await;
        assert_eq!(response.status(), 201, "the cached key after the {attempt} attempt");
    }
    assert_eq!(rows(&server, &valid).await.len(), before.len() + 2);
}

#[tokio::test]
async fn start_survives_failing_key_server() {
    let rsa = &keys().rsa[0];
    let key_server = KeyServer::start(key_set(&[&rsa.jwk])).await;
    key_server.answer_with_status(500);
    let server = start_server(&key_server.args("1s")).await;
    assert_eq!(key_server.fetches(), 1, "the failed fetch at start");

    let token = rsa.sign(&claims());
    let response = send(&server, Method::POST, SEED, &token).await;
    assert_keys_unavailable(response, "a request before any key was loaded").await;
    assert_eq!(key_server.fetches(), 2, "the request tried once more");

    key_server.answer_with_status(200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let response = send(&server, Method::POST, SEED, &token).await;
    assert_eq!(response.status(), 201, "after the key server recovered");
    assert_eq!(key_server.fetches(), 3);
    assert_eq!(rows(&server, &token).await.len(), 1);
}
