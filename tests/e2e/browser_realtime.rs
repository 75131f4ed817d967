//! The guided first run and the realtime panel in headless Chromium
//! (`tests/browser/realtime.test.mjs`): sign up from the landing page, watch the setup page turn
//! from waiting to receiving data, the dashboard's live count and feed move without a reload,
//! an empty project's dashboard explain itself, the projects list show visitors today.

use crate::support::{TestApp, browser_suite_available, run_browser_script};

#[tokio::test]
async fn the_first_run_and_the_live_dashboard_update_without_reload_in_chromium() {
    if !browser_suite_available("the browser realtime test") {
        return;
    }
    let app = TestApp::spawn(&[]).await;
    run_browser_script(&app, "realtime.test.mjs", &[]).await;
    app.stop().await;
}
