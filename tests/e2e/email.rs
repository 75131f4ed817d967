//! Email through a local SMTP sink the test starts (Debian's `python3-aiosmtpd`, writing every
//! message to a Maildir), never a real mail server: forgotten passwords (the link works once,
//! expires, ends every session) and scheduled email reports (one per period per subscriber,
//! even with two instances), and the pages saying why without SMTP.

use crate::support::{
    TestApp, browser, csrf_of, eventually, get_accepting, login, page, post_form, project_id_of,
    public_key_of, register, spawn_listening, stdout_of, submit,
};
use serde_json::{Value, json};
use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};
use superinsights::{
    domain::{email::PasswordReset, ids::DocId, timestamp::now_ms},
    services::password_reset::token_hash,
};

/// One received message, decoded.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    /// (file name, content type, bytes) of each attachment.
    pub attachments: Vec<(String, String, Vec<u8>)>,
}

/// `python3 -m aiosmtpd` on a free loopback port, storing messages in a Maildir.
pub struct SmtpSink {
    child: Child,
    dir: tempfile::TempDir,
    pub port: u16,
}

/// Debian's interpreter (the one `python3-aiosmtpd` installs into).
const PYTHON: &str = "/usr/bin/python3";

impl SmtpSink {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (child, ports) =
            spawn_listening("the SMTP sink", 1, Duration::from_secs(15), |ports| {
                Command::new(PYTHON)
                    .args(["-m", "aiosmtpd", "-n", "-l"])
                    .arg(format!("127.0.0.1:{}", ports[0]))
                    .args(["-c", "aiosmtpd.handlers.Mailbox"])
                    .arg(dir.path().join("maildir"))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("python3-aiosmtpd is installed (scripts/test installs it)")
            })
            .await;
        Self {
            child,
            dir,
            port: ports[0],
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn maildir(&self) -> PathBuf {
        self.dir.path().join("maildir")
    }

    /// Every message received so far, oldest first, decoded by Python's email parser.
    pub fn messages(&self) -> Vec<Mail> {
        let script = r#"
import email, email.policy, json, os, sys
d = os.path.join(sys.argv[1], "new")
files = sorted(os.listdir(d), key=lambda f: os.path.getmtime(os.path.join(d, f))) if os.path.isdir(d) else []
for f in files:
    with open(os.path.join(d, f), "rb") as fh:
        m = email.message_from_binary_file(fh, policy=email.policy.default)
    body = m.get_body(("plain",))
    files = [[a.get_filename(), a.get_content_type(), a.get_payload(decode=True).hex()] for a in m.iter_attachments()]
    print(json.dumps({"to": str(m["to"]), "subject": str(m["subject"]), "text": body.get_content() if body else "", "attachments": files}))
"#;
        let out = stdout_of(
            Command::new(PYTHON)
                .args(["-c", script])
                .arg(self.maildir()),
        );
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                Mail {
                    to: v["to"].as_str().unwrap().to_string(),
                    subject: v["subject"].as_str().unwrap().to_string(),
                    text: v["text"].as_str().unwrap().to_string(),
                    attachments: v["attachments"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|a| {
                            (
                                a[0].as_str().unwrap_or_default().to_string(),
                                a[1].as_str().unwrap().to_string(),
                                hex::decode(a[2].as_str().unwrap()).unwrap(),
                            )
                        })
                        .collect(),
                }
            })
            .collect()
    }

    /// Waits until at least `n` messages arrived; returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<Mail> {
        eventually(Duration::from_secs(20), "the email arrives", async || {
            self.messages().len() >= n
        })
        .await;
        self.messages()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first `http…` link in `text` starting with `prefix`.
fn link(text: &str, prefix: &str) -> String {
    let at = text
        .find(prefix)
        .unwrap_or_else(|| panic!("a {prefix} link in {text}"));
    text[at..].split_whitespace().next().unwrap().to_string()
}

async fn smtp_app(sink: &SmtpSink) -> TestApp {
    let url = sink.url();
    TestApp::spawn(&[
        ("SMTP_URL", &url),
        ("SMTP_FROM", "SuperInsights <si@example.com>"),
    ])
    .await
}

#[tokio::test]
async fn a_forgotten_password_is_reset_by_an_emailed_link_that_works_once() {
    let sink = SmtpSink::start().await;
    let app = smtp_app(&sink).await;
    let (old_session, _) = register(&app, "alice@example.com").await;

    // The same answer whether the address has an account or not.
    let visitor = browser();
    let (status, html) = page(&visitor, &app, "/auth/login").await;
    assert_eq!(status, 200);
    assert!(html.contains("href=\"/auth/forgot\""));
    let (_, form) = page(&visitor, &app, "/auth/forgot").await;
    let csrf = csrf_of(&form);
    let known = post_form(
        &visitor,
        &app,
        "/auth/forgot",
        &csrf,
        &[("email", "Alice@Example.com")],
    )
    .await;
    assert_eq!(known.status(), 200);
    let known = known.text().await.unwrap();
    let unknown = post_form(
        &visitor,
        &app,
        "/auth/forgot",
        &csrf,
        &[("email", "nobody@example.com")],
    )
    .await;
    assert_eq!(unknown.status(), 200);
    assert_eq!(known, unknown.text().await.unwrap());
    assert!(known.contains("If an account exists"));

    let mails = sink.wait_for(1).await;
    let mail = &mails[0];
    assert_eq!(mail.to, "alice@example.com");
    assert!(mail.subject.contains("Reset your SuperInsights password"));
    let reset_link = link(
        &mail.text,
        &format!("http://{}/auth/reset?token=prt_", app.addr),
    );
    let path = reset_link
        .trim_start_matches(&format!("http://{}", app.addr))
        .to_string();
    let token = path.split("token=").nth(1).unwrap().to_string();
    assert!(
        !app.stored_data_contains(&token).await,
        "only the token's hash is stored"
    );

    // The link opens the form; a too-short password keeps the token.
    let (status, html) = page(&visitor, &app, &path).await;
    assert_eq!(status, 200, "{html}");
    let r = post_form(
        &visitor,
        &app,
        "/auth/reset",
        &csrf_of(&html),
        &[("token", &token), ("password", "short")],
    )
    .await;
    assert_eq!(r.status(), 400);
    let (status, html) = page(&visitor, &app, &path).await;
    assert_eq!(status, 200);
    let r = post_form(
        &visitor,
        &app,
        "/auth/reset",
        &csrf_of(&html),
        &[("token", &token), ("password", "brand-new-password")],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("id=\"reset-done\""));

    // Every other session ended; the new password signs in, the old one does not.
    let r = get_accepting(&old_session, &app, "/projects", "text/html").await;
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/auth/login")
    );
    let (_, r) = login(&app, "alice@example.com", "password-123").await;
    assert_eq!(r.status(), 400);
    let (_, r) = login(&app, "alice@example.com", "brand-new-password").await;
    assert_eq!(r.status(), 303);

    // Used once: the link is refused now, and so is a replayed form.
    let (status, html) = page(&visitor, &app, &path).await;
    assert_eq!(status, 400);
    assert!(html.contains("already used"));
    let (_, login_page) = page(&visitor, &app, "/auth/forgot").await;
    let r = post_form(
        &visitor,
        &app,
        "/auth/reset",
        &csrf_of(&login_page),
        &[("token", &token), ("password", "another-password")],
    )
    .await;
    assert_eq!(r.status(), 400);

    // An expired token is refused.
    let user = app
        .state
        .stores
        .accounts
        .user_by_email("alice@example.com")
        .await
        .unwrap()
        .unwrap();
    let stale = "prt_000000000000000000000000000000000000000000000001";
    app.state
        .stores
        .mail
        .insert_password_reset(&PasswordReset {
            id: DocId::new(),
            user_id: user.id,
            token_hash: token_hash(stale),
            created_at: now_ms() - 2 * 3600 * 1000,
            expires_at: now_ms() - 3600 * 1000,
            used_at: None,
        })
        .await
        .unwrap();
    let (status, html) = page(&visitor, &app, &format!("/auth/reset?token={stale}")).await;
    assert_eq!(status, 400);
    assert!(html.contains("expired"));

    // Only one email was ever sent (none to the unknown address), and the log says what
    // happened without the token.
    assert_eq!(sink.messages().len(), 1);
    let (root, _) = login(&app, "alice@example.com", "brand-new-password").await;
    let logs: Value = get_accepting(&root, &app, "/admin/logs?limit=200", "application/json")
        .await
        .json()
        .await
        .unwrap();
    let text = logs.to_string();
    assert!(
        text.contains("AUTH_PASSWORD_RESET_REQUEST") && text.contains("\"AUTH_PASSWORD_RESET\"")
    );
    assert!(!text.contains(&token) && !text.contains("brand-new-password"));
    app.stop().await;
}

#[tokio::test]
async fn without_smtp_the_email_features_say_why() {
    let app = TestApp::spawn(&[]).await;
    let (alice, settings) = register(&app, "alice@example.com").await;
    let project = project_id_of(&settings);
    let visitor = browser();
    let (status, html) = page(&visitor, &app, "/auth/forgot").await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"reset-unavailable\"") && html.contains("SMTP_URL"));
    assert!(
        !html.contains("action=\"/auth/forgot\""),
        "no form to fill in vain"
    );
    let (_, login_page) = page(&visitor, &app, "/auth/login").await;
    let r = post_form(
        &visitor,
        &app,
        "/auth/forgot",
        &csrf_of(&login_page),
        &[("email", "alice@example.com")],
    )
    .await;
    assert_eq!(r.status(), 503);
    let path = format!("/projects/{project}/email-reports");
    let (status, html) = page(&alice, &app, &path).await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"email-reports-unavailable\"") && html.contains("SMTP_URL"));
    let r = post_form(
        &alice,
        &app,
        &path,
        &csrf_of(&html),
        &[("cadence", "weekly"), ("subscribe", "true")],
    )
    .await;
    assert_eq!(r.status(), 409);
    assert!(
        app.state
            .stores
            .mail
            .subscriptions_of(
                DocId::parse(&project).unwrap(),
                app.state
                    .stores
                    .accounts
                    .user_by_email("alice@example.com")
                    .await
                    .unwrap()
                    .unwrap()
                    .id
            )
            .await
            .unwrap()
            .is_empty()
    );
    app.stop().await;
}

#[tokio::test]
async fn email_reports_go_out_once_per_period_per_subscriber_across_instances() {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let env = [
        ("SMTP_URL", url.as_str()),
        ("SMTP_FROM", "si@example.com"),
        ("PUBLIC_URL", "http://si.test"),
        ("EMAIL_REPORTS_CHECK_MS", "150"),
    ];
    let first = TestApp::spawn(&env).await;
    let second = TestApp::spawn_in(&first.data_dir, &env).await;
    let (alice, settings) = register(&first, "alice@example.com").await;
    let project = project_id_of(&settings);
    let key = public_key_of(&first, &project).await;

    // Page views in the last complete week (and one in the week before).
    let week = superinsights::domain::email::Cadence::Weekly.last_complete(now_ms());
    let iso = superinsights::domain::timestamp::to_iso;
    let mut views: Vec<Value> = (0..5)
        .map(|i| json!({"url": if i < 3 { "/pricing" } else { "/" }, "clientId": format!("c{i}"), "timestamp": iso(week.start + 3_600_000 * (i + 1))}))
        .collect();
    views.push(json!({"url": "/", "clientId": "old", "timestamp": iso(week.start - 3_600_000)}));
    assert_eq!(
        first
            .ingest("pageviews", &key, &json!(views))
            .await
            .status(),
        201
    );

    let path = format!("/projects/{project}/email-reports");
    let r = submit(
        &alice,
        &first,
        &path,
        &path,
        &[("cadence", "weekly"), ("subscribe", "true")],
    )
    .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("id=\"weekly-state\">subscribed, link"),
        "{html}"
    );

    let mails = sink.wait_for(1).await;
    let mail = &mails[0];
    assert_eq!(mail.to, "alice@example.com");
    assert!(mail.attachments.is_empty(), "a link, nothing attached");
    assert!(
        mail.subject.starts_with("Weekly report: My First Project"),
        "{}",
        mail.subject
    );
    assert!(
        mail.text
            .contains("Page views: 5 (+400% vs the previous period: 1)"),
        "{}",
        mail.text
    );
    assert!(mail.text.contains("Visitors: 5"));
    assert!(mail.text.contains("3  /pricing"), "{}", mail.text);
    let dashboard = link(&mail.text, "http://si.test/projects/");
    assert_eq!(
        dashboard,
        format!("http://si.test/projects/{project}/dashboard")
    );
    let (status, _) = page(
        &alice,
        &first,
        dashboard.trim_start_matches("http://si.test"),
    )
    .await;
    assert_eq!(status, 200, "the link opens the dashboard");

    // Both instances keep scheduling; the subscriber still has one email for the period.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        sink.messages().len(),
        1,
        "one email per period per subscriber"
    );

    let r = submit(
        &alice,
        &first,
        &path,
        &path,
        &[("cadence", "weekly"), ("subscribe", "false")],
    )
    .await;
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("id=\"weekly-state\">not subscribed")
    );
    second.stop().await;
    first.stop().await;
}

/// Ingests five page views into the last complete week of `project`.
async fn views_last_week(app: &TestApp, project: &str) {
    let key = public_key_of(app, project).await;
    let week = superinsights::domain::email::Cadence::Weekly.last_complete(now_ms());
    let iso = superinsights::domain::timestamp::to_iso;
    let views: Vec<Value> = (0..5)
        .map(|i| json!({"url": "/pricing", "clientId": format!("c{i}"), "timestamp": iso(week.start + 3_600_000 * (i + 1))}))
        .collect();
    assert_eq!(
        app.ingest("pageviews", &key, &json!(views)).await.status(),
        201
    );
}

#[tokio::test]
async fn email_reports_attach_the_pdf_or_link_it_when_it_is_over_the_cap() {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let env = [
        ("SMTP_URL", url.as_str()),
        ("SMTP_FROM", "si@example.com"),
        ("PUBLIC_URL", "http://si.test"),
        ("EMAIL_REPORTS_CHECK_MS", "150"),
    ];
    // The PDF chosen and under the cap: attached, a valid PDF of the project.
    let app = TestApp::spawn(&env).await;
    let (alice, settings) = register(&app, "alice@example.com").await;
    let project = project_id_of(&settings);
    views_last_week(&app, &project).await;
    let path = format!("/projects/{project}/email-reports");
    let (_, html) = page(&alice, &app, &path).await;
    assert!(
        html.contains("id=\"weekly-pdf\""),
        "the choice is offered: {html}"
    );
    let r = submit(
        &alice,
        &app,
        &path,
        &path,
        &[
            ("cadence", "weekly"),
            ("subscribe", "true"),
            ("delivery", "pdf"),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("id=\"weekly-state\">subscribed, PDF attached"),
        "{html}"
    );
    assert!(html.contains("with the PDF report attached"), "{html}");
    let mails = sink.wait_for(1).await;
    let mail = &mails[0];
    assert_eq!(mail.to, "alice@example.com");
    assert!(
        mail.text
            .contains("The full PDF report of this period is attached."),
        "{}",
        mail.text
    );
    assert!(mail.text.contains("Page views: 5"), "{}", mail.text);
    assert_eq!(mail.attachments.len(), 1);
    let (name, content_type, pdf) = &mail.attachments[0];
    assert_eq!(content_type, "application/pdf");
    assert!(
        name.starts_with("weekly-") && name.ends_with(".pdf"),
        "{name}"
    );
    assert!(pdf.starts_with(b"%PDF-"));
    assert!(
        pdf.len() < 200_000,
        "the font is subset: {} bytes",
        pdf.len()
    );
    let text = crate::reports::pdf_text(pdf);
    assert!(text.contains("My First Project"), "{text}");
    assert!(text.contains("Page views"), "{text}");
    // Switching back to a link keeps the subscription.
    let r = submit(
        &alice,
        &app,
        &path,
        &path,
        &[
            ("cadence", "weekly"),
            ("subscribe", "true"),
            ("delivery", "link"),
        ],
    )
    .await;
    let html = r.text().await.unwrap();
    assert!(
        html.contains("id=\"weekly-state\">subscribed, link"),
        "{html}"
    );
    assert!(html.contains("id=\"weekly-delivery\""), "{html}");
    // A bad delivery is refused and changes nothing.
    let r = submit(
        &alice,
        &app,
        &path,
        &path,
        &[
            ("cadence", "monthly"),
            ("subscribe", "true"),
            ("delivery", "fax"),
        ],
    )
    .await;
    assert_eq!(r.status(), 400);
    let (_, html) = page(&alice, &app, &path).await;
    assert!(
        html.contains("id=\"monthly-state\">not subscribed"),
        "{html}"
    );
    app.stop().await;

    // Over the cap: linked instead, with a sentence saying so.
    let mut capped = env.to_vec();
    capped.push(("EMAIL_REPORT_ATTACHMENT_MAX_BYTES", "1024"));
    let app = TestApp::spawn(&capped).await;
    let (bob, settings) = register(&app, "bob@example.com").await;
    let project = project_id_of(&settings);
    views_last_week(&app, &project).await;
    let path = format!("/projects/{project}/email-reports");
    let (_, html) = page(&bob, &app, &path).await;
    assert!(html.contains("a PDF over 1 KB is linked instead"), "{html}");
    let r = submit(
        &bob,
        &app,
        &path,
        &path,
        &[
            ("cadence", "weekly"),
            ("subscribe", "true"),
            ("delivery", "pdf"),
        ],
    )
    .await;
    assert!(r.text().await.unwrap().contains("subscribed, PDF attached"));
    let mails = sink.wait_for(2).await;
    let mail = mails
        .iter()
        .find(|m| m.to == "bob@example.com")
        .expect("bob's email");
    assert!(mail.attachments.is_empty(), "nothing attached over the cap");
    assert!(
        mail.text.contains("is larger than this server attaches to an email (1 KB), so it is not attached: open the dashboard instead."),
        "{}",
        mail.text
    );
    let dashboard = link(&mail.text, "http://si.test/projects/");
    assert_eq!(
        dashboard,
        format!("http://si.test/projects/{project}/dashboard")
    );
    app.stop().await;
}
