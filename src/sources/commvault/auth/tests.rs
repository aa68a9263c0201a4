use super::*;

#[test]
fn login_failure_reported_with_http_200_is_an_error() {
    let body = br#"{"errList":[{"errLogMessage":"Username/Password are incorrect","errorCode":5}],"loginAttempts":1,"remainingLockTime":0}"#;
    assert_eq!(
        parse_login(body).unwrap_err(),
        LoginFailure::Refused("errorCode 5: Username/Password are incorrect".into())
    );
    assert!(
        matches!(parse_login(b"<html>"), Err(LoginFailure::Refused(e)) if e.contains("invalid JSON"))
    );
    assert!(matches!(
        parse_login(br#"{"userName":"monitor"}"#),
        Err(LoginFailure::Refused(_))
    ));
}

#[test]
fn locked_account_is_reported_with_its_remaining_time() {
    let body = br#"{"errList":[{"errLogMessage":"User account is locked","errorCode":1116}],"isAccountLocked":true,"remainingLockTime":840,"loginAttempts":5}"#;
    assert_eq!(
        parse_login(body).unwrap_err(),
        LoginFailure::Locked {
            remaining: Some(Duration::from_secs(840)),
            message: Some("errorCode 1116: User account is locked".into())
        }
    );
    // Locked without a time, and a time without the flag.
    assert!(matches!(
        parse_login(br#"{"isAccountLocked": true}"#),
        Err(LoginFailure::Locked {
            remaining: None,
            ..
        })
    ));
    assert!(matches!(
        parse_login(br#"{"remainingLockTime": "60", "errList": []}"#),
        Err(LoginFailure::Locked {
            remaining: Some(_),
            ..
        })
    ));
    let msg = locked_message("monitor", Some(Duration::from_secs(840)), None);
    assert!(
        msg.contains("\"monitor\" is locked for another 14m (remainingLockTime 840 s)"),
        "{msg}"
    );
}

#[test]
fn login_success_gives_the_token_verbatim_or_a_bearer_for_commvault_cloud() {
    let body = br#"{"aliasName":"1","userName":"monitor","token":"QSDK 3856abc","errList":[],"loginAttempts":0,"remainingLockTime":0,"isAccountLocked":false}"#;
    assert_eq!(parse_login(body).unwrap().expose(), "QSDK 3856abc");
    let saas = br#"{"data": {"authToken": "eyJhbGciOi.abc.def", "userName": "monitor"}}"#;
    assert_eq!(
        parse_login(saas).unwrap().expose(),
        "Bearer eyJhbGciOi.abc.def"
    );
}

#[test]
fn renewal_without_a_token_is_a_failure() {
    // The refusal of a renewal: HTTP 200, an error object, no token.
    let refused =
        br#"{"error": {"errorCode": 1, "errLogMessage": "Invalid device id or session"}}"#;
    assert_eq!(
        parse_renewal(refused).unwrap_err().to_string(),
        "errorCode 1: Invalid device id or session"
    );
    assert_eq!(
        parse_renewal(b"{}").unwrap_err().to_string(),
        "the answer has no token"
    );
    assert_eq!(
        parse_renewal(br#"{"token": ""}"#).unwrap_err().to_string(),
        "the answer has no token"
    );
    assert_eq!(
        parse_renewal(br#"{"token": "QSDK 77"}"#).unwrap().expose(),
        "QSDK 77"
    );
}

#[test]
fn access_token_renewal_answers() {
    let r = parse_access_renewal(
        br#"{"accessToken": "a2", "refreshToken": "r2", "tokenExpiryTimestamp": 1900000000}"#,
    )
    .unwrap();
    assert_eq!(r.access_token.expose(), "a2");
    assert_eq!(r.refresh_token.unwrap().expose(), "r2");
    assert_eq!(
        r.expires,
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000))
    );
    // Absurd times are unknown, not a panic.
    let r =
        parse_access_renewal(br#"{"accessToken": "a", "tokenExpiryTimestamp": 1e300}"#).unwrap();
    assert_eq!(r.expires, None);
    assert!(r.refresh_token.is_none());
    assert_eq!(
        parse_access_renewal(br#"{"errorCode": 5, "errorMessage": "Invalid refresh token"}"#)
            .err()
            .map(|e| e.to_string())
            .as_deref(),
        Some("errorCode 5: Invalid refresh token")
    );
    assert_eq!(access_header("abc"), "QSDK abc");
    assert_eq!(access_header("Bearer x"), "Bearer x");
}

#[test]
fn token_file_holds_the_refresh_token_then_the_access_token() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("refresh");
    std::fs::write(&path, "r1\n").unwrap();
    let (r, a) = read_pair(&path).unwrap();
    assert_eq!((r.expose(), a), ("r1", None));
    let text = token_file_text(&Secret::new("r2"), &Secret::new("a2"));
    write_token_file(&path, &text, &mut |_| Ok(())).unwrap();
    let (r, a) = read_pair(&path).unwrap();
    assert_eq!((r.expose(), a.unwrap().expose()), ("r2", "a2"));
    std::fs::write(&path, "\n").unwrap();
    assert!(read_pair(&path)
        .unwrap_err()
        .to_string()
        .contains("is empty"));
}

#[test]
fn idle_tokens_are_renewed_before_the_idle_timeout() {
    assert_eq!(plan(None), Plan::Login);
    assert_eq!(plan(Some(Duration::from_secs(60))), Plan::Use);
    assert_eq!(plan(Some(RENEW_AFTER)), Plan::Renew);
    assert_eq!(
        plan(Some(IDLE_TIMEOUT - Duration::from_secs(1))),
        Plan::Renew
    );
    // Past the idle timeout the session is gone upstream: renewing cannot work.
    assert_eq!(plan(Some(IDLE_TIMEOUT)), Plan::Login);
}

fn session(password: &str) -> Session {
    let target = CommvaultTarget {
        name: "cs1".into(),
        base_url: Url::parse("https://cs.example.com/commandcenter/api").unwrap(),
        credentials: CommvaultCredentials::Password {
            username: "monitor".into(),
            password: Secret::new(password),
        },
        device_id: "dev-1".into(),
        organizations: None,
        interval: Duration::from_secs(60),
        concurrency: 1,
        tls: Default::default(),
        stale_after: Duration::from_secs(600),
        metrics: Default::default(),
    };
    Session::new(&target, Arc::new(SelfMetrics::new()))
}

#[test]
fn endpoints_and_sensitive_authtoken() {
    let s = session("pw-1234");
    let i = &s.inner;
    assert_eq!(
        i.login_url.as_str(),
        "https://cs.example.com/commandcenter/api/Login"
    );
    assert_eq!(
        i.renew_url.as_str(),
        "https://cs.example.com/commandcenter/api/RenewLoginToken"
    );
    assert_eq!(
        i.access_renew_url.as_str(),
        "https://cs.example.com/commandcenter/api/V4/AccessToken/Renew"
    );
    let req = i.request(
        Method::GET,
        &i.logout_url,
        &Secret::new("QSDK 0123abcd"),
        None,
    );
    assert_eq!(req.headers["authtoken"], "QSDK 0123abcd");
    assert!(req.headers["authtoken"].is_sensitive());
    assert_eq!(req.headers[ACCEPT], "application/json");
    assert!(!format!("{:?}", req.headers).contains("0123abcd"));
}

#[test]
fn upstream_text_never_carries_the_password_or_a_token() {
    let s = session("hunter2-secret");
    let encoded = base64::engine::general_purpose::STANDARD.encode("hunter2-secret");
    let msg = format!("bad password hunter2-secret ({encoded})");
    assert_eq!(s.scrub(&msg), "bad password <redacted> (<redacted>)");
    s.inner.remember(&Secret::new("QSDK 0badc0ffee"));
    assert_eq!(
        s.scrub("session QSDK 0badc0ffee unknown; 0badc0ffee"),
        "session <redacted> unknown; <redacted>"
    );
}
