//! Who may do what through the admin API: the four tenant roles and the permission
//! table (README, "Admin API"). Operator keys are a different kind of key altogether
//! and appear nowhere here.

use serde::{Deserialize, Serialize};

/// A tenant API key's role, weakest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Staff,
    Admin,
    Owner,
}

/// What a request wants to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    /// Read settings, FAQs, templates, prompts, conversations, usage.
    Read,
    /// Take over a conversation, reply as a person, release it.
    HandleConversations,
    /// Change bot settings, FAQs, templates and prompts; read the audit log.
    EditBot,
    /// Create and revoke API keys; write channel credentials.
    ManageAccess,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Staff => "staff",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "viewer" => Role::Viewer,
            "staff" => Role::Staff,
            "admin" => Role::Admin,
            "owner" => Role::Owner,
            _ => return None,
        })
    }

    /// The weakest role holding `p`.
    pub fn needed_for(p: Permission) -> Role {
        match p {
            Permission::Read => Role::Viewer,
            Permission::HandleConversations => Role::Staff,
            Permission::EditBot => Role::Admin,
            Permission::ManageAccess => Role::Owner,
        }
    }

    pub fn allows(self, p: Permission) -> bool {
        self >= Role::needed_for(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_holds_its_own_permissions_and_those_below() {
        use Permission::*;
        let table = [
            (Role::Viewer, [true, false, false, false]),
            (Role::Staff, [true, true, false, false]),
            (Role::Admin, [true, true, true, false]),
            (Role::Owner, [true, true, true, true]),
        ];
        for (role, expected) in table {
            let got = [Read, HandleConversations, EditBot, ManageAccess].map(|p| role.allows(p));
            assert_eq!(got, expected, "{role:?}");
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
