//! What every signed-in page shows around its content (the navigation shell).

use super::session::AuthUser;

/// Navigation data for `templates/app.html`.
#[derive(Clone, Debug)]
pub struct Shell {
    pub email: String,
    pub user_id: String,
    pub is_admin: bool,
    /// (id, name) of the user's organizations.
    pub orgs: Vec<(String, String)>,
    pub current_org_id: Option<String>,
    pub current_org_name: Option<String>,
    pub csrf: String,
}

impl Shell {
    pub fn of(auth: &AuthUser) -> Self {
        Self {
            email: auth.user.email.clone(),
            user_id: auth.user.id.to_hex(),
            is_admin: auth.is_admin(),
            orgs: auth
                .memberships
                .iter()
                .map(|(o, _)| (o.id.to_hex(), o.name.clone()))
                .collect(),
            current_org_id: auth.current_org.as_ref().map(|o| o.id.to_hex()),
            current_org_name: auth.current_org.as_ref().map(|o| o.name.clone()),
            csrf: auth.csrf.clone(),
        }
    }
}
