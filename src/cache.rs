//! The tenant context cache: everything one tenant's messages need (settings,
//! templates, training data and the opened secrets), loaded once and kept in moka,
//! looked up by tenant id or by a channel account (Meta's phone_number_id).
//! Entries expire after a TTL and are dropped at once on every change made through
//! this process (`invalidate`).

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use secrecy::SecretString;

use crate::crypto::{CryptoError, KeyRing};
use crate::domain::secret_field::*;
use crate::domain::*;
use crate::faq::FaqSet;
use crate::store::conversations::PromptVersion;
use crate::store::{SecretRecord, Store, StoreError};

/// A tenant's WhatsApp account with its opened credentials.
pub struct WhatsappContext {
    pub account: ChannelAccount,
    pub access_token: SecretString,
    pub app_secret: SecretString,
    pub verify_token: SecretString,
}

/// A tenant's LLM provider with its opened key.
pub struct AiContext {
    pub config: AiConfig,
    pub api_key: Option<SecretString>,
}

/// Everything one tenant's messages need, ready to use.
pub struct TenantContext {
    pub tenant: Tenant,
    pub settings: ControlSettings,
    pub whatsapp: Option<WhatsappContext>,
    pub ai: Option<AiContext>,
    pub templates: Vec<Template>,
    pub training: Vec<TrainingItem>,
    /// The FAQ matcher over `training`, rebuilt whenever the context is reloaded.
    pub faq: FaqSet,
    /// The published prompt versions (system, classifier), if any.
    pub prompts: Vec<PromptVersion>,
}

impl TenantContext {
    /// The live version of a prompt kind, if one was published.
    pub fn published_prompt(&self, kind: &str) -> Option<&PromptVersion> {
        self.prompts.iter().find(|p| p.kind == kind)
    }

    /// The default template (tone, length, fallback system prompt), if any.
    pub fn default_template(&self) -> Option<&Template> {
        self.templates
            .iter()
            .find(|t| t.is_default)
            .or(self.templates.first())
    }
}

/// Why a tenant's context could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("tenant {tenant}: secret {field}: {source}")]
    Secret {
        tenant: String,
        field: String,
        source: CryptoError,
    },
    #[error("tenant {tenant}: secret {field} is missing")]
    MissingSecret { tenant: String, field: String },
}

/// Opens one stored secret, naming tenant and field when it fails.
pub fn open_secret(
    keys: &KeyRing,
    tenant: &Tenant,
    secrets: &[SecretRecord],
    field: &str,
) -> Result<Option<SecretString>, ContextError> {
    let Some(rec) = secrets.iter().find(|s| s.name == field) else {
        return Ok(None);
    };
    keys.open(tenant.id, field, &rec.sealed)
        .map(Some)
        .map_err(|source| ContextError::Secret {
            tenant: tenant.slug.clone(),
            field: field.to_string(),
            source,
        })
}

fn required(
    keys: &KeyRing,
    tenant: &Tenant,
    secrets: &[SecretRecord],
    field: &str,
) -> Result<SecretString, ContextError> {
    open_secret(keys, tenant, secrets, field)?.ok_or_else(|| ContextError::MissingSecret {
        tenant: tenant.slug.clone(),
        field: field.to_string(),
    })
}

impl TenantContext {
    /// Loads and opens a tenant's context; `None` if the tenant does not exist.
    pub async fn load(
        store: &dyn Store,
        keys: &KeyRing,
        id: TenantId,
    ) -> Result<Option<Self>, ContextError> {
        let Some(state) = store.load_tenant_state(id).await? else {
            return Ok(None);
        };
        let secrets = store.list_secrets(id).await?;
        let prompts = store.published_prompts(id).await?;
        let t = &state.tenant;
        let whatsapp = match state.whatsapp {
            Some(account) => Some(WhatsappContext {
                access_token: required(keys, t, &secrets, WHATSAPP_ACCESS_TOKEN)?,
                app_secret: required(keys, t, &secrets, WHATSAPP_APP_SECRET)?,
                verify_token: required(keys, t, &secrets, WHATSAPP_VERIFY_TOKEN)?,
                account,
            }),
            None => None,
        };
        let ai = match state.ai {
            Some(config) => Some(AiContext {
                api_key: open_secret(keys, t, &secrets, AI_API_KEY)?,
                config,
            }),
            None => None,
        };
        Ok(Some(TenantContext {
            faq: FaqSet::build(&state.training),
            settings: state.settings.unwrap_or_default(),
            tenant: state.tenant,
            whatsapp,
            ai,
            templates: state.templates,
            training: state.training,
            prompts,
        }))
    }
}

/// The cache itself. Cheap to clone; clones share entries.
#[derive(Clone)]
pub struct TenantCache {
    store: Arc<dyn Store>,
    keys: Arc<KeyRing>,
    by_id: Cache<TenantId, Arc<TenantContext>>,
    routes: Cache<(Channel, String), TenantId>,
    slugs: Cache<String, TenantId>,
}

impl TenantCache {
    pub fn new(store: Arc<dyn Store>, keys: Arc<KeyRing>, ttl: Duration) -> Self {
        Self {
            store,
            keys,
            by_id: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(ttl)
                .build(),
            routes: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ttl)
                .support_invalidation_closures()
                .build(),
            slugs: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ttl)
                .support_invalidation_closures()
                .build(),
        }
    }

    /// The context of tenant `id`; concurrent callers share one load.
    pub async fn get(&self, id: TenantId) -> Result<Option<Arc<TenantContext>>, Arc<ContextError>> {
        // A hit (nearly every call) is read without setting up a load.
        if let Some(ctx) = self.by_id.get(&id).await {
            return Ok(Some(ctx));
        }
        let store = self.store.clone();
        let keys = self.keys.clone();
        let loaded = self
            .by_id
            .try_get_with(id, async move {
                match TenantContext::load(store.as_ref(), &keys, id).await {
                    Ok(Some(ctx)) => Ok(Arc::new(ctx)),
                    Ok(None) => Err(ContextError::Store(StoreError::NotFound("tenant"))),
                    Err(e) => Err(e),
                }
            })
            .await;
        match loaded {
            Ok(ctx) => Ok(Some(ctx)),
            Err(e) if matches!(*e, ContextError::Store(StoreError::NotFound(_))) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The context of the tenant that owns `provider_account_id` on `channel`.
    pub async fn get_by_account(
        &self,
        channel: Channel,
        provider_account_id: &str,
    ) -> Result<Option<Arc<TenantContext>>, Arc<ContextError>> {
        let lookup = self
            .store
            .find_tenant_by_channel_account(channel, provider_account_id);
        let key = (channel, provider_account_id.to_string());
        self.get_indexed(&self.routes, &key, || key.clone(), lookup)
            .await
    }

    /// The context of the tenant with this slug (webhook paths name tenants by slug).
    pub async fn get_by_slug(
        &self,
        slug: &str,
    ) -> Result<Option<Arc<TenantContext>>, Arc<ContextError>> {
        let lookup = async { Ok(self.store.find_tenant_by_slug(slug).await?.map(|t| t.id)) };
        self.get_indexed(&self.slugs, slug, || slug.to_string(), lookup)
            .await
    }

    /// Finds a tenant id through `index`, asking the store (`lookup`, only awaited on a
    /// miss) when it is not cached, then returns that tenant's context.
    /// `key` is looked up as it is and made owned (`owned`) only to be inserted.
    async fn get_indexed<K, Q>(
        &self,
        index: &Cache<K, TenantId>,
        key: &Q,
        owned: impl FnOnce() -> K,
        lookup: impl std::future::Future<Output = Result<Option<TenantId>, StoreError>>,
    ) -> Result<Option<Arc<TenantContext>>, Arc<ContextError>>
    where
        K: std::hash::Hash + Eq + Send + Sync + 'static + std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        let id = match index.get(key).await {
            Some(id) => id,
            None => {
                let found = lookup.await.map_err(|e| Arc::new(ContextError::Store(e)))?;
                let Some(id) = found else { return Ok(None) };
                index.insert(owned(), id).await;
                id
            }
        };
        self.get(id).await
    }

    /// Drops every cached tenant whose revision in the database differs from the cached
    /// one (changed or deleted by another process, e.g. `parley tenant apply`).
    /// Returns how many were dropped.
    pub async fn sync_with_store(&self) -> Result<usize, StoreError> {
        let current: std::collections::HashMap<TenantId, i64> = self
            .store
            .list_tenant_revisions()
            .await?
            .into_iter()
            .collect();
        let stale: Vec<TenantId> = self
            .by_id
            .iter()
            .filter(|(id, ctx)| current.get(id) != Some(&ctx.tenant.revision))
            .map(|(id, _)| *id)
            .collect();
        for id in &stale {
            self.invalidate(*id).await;
        }
        Ok(stale.len())
    }

    /// Drops everything cached about tenant `id`; the next lookup reloads it.
    pub async fn invalidate(&self, id: TenantId) {
        self.by_id.invalidate(&id).await;
        // Only fails when closures are not enabled, and they are (see `new`).
        let _ = self.routes.invalidate_entries_if(move |_, v| *v == id);
        let _ = self.slugs.invalidate_entries_if(move |_, v| *v == id);
    }
}
