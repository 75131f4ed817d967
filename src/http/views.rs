//! What every signed-in page (and every public-link page) shows around its content: the
//! navigation shell.

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
    /// A public-link visitor: no account, read-only; the navigation shows no account links.
    pub public: bool,
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
            public: false,
        }
    }

    /// The shell of a public (shared) link: no account, no organization.
    pub fn public() -> Self {
        Self {
            email: String::new(),
            user_id: String::new(),
            is_admin: false,
            orgs: Vec::new(),
            current_org_id: None,
            current_org_name: None,
            csrf: String::new(),
            public: true,
        }
    }
}
