//! The part of the `Store` implementation both backends share. The SQL is the same
//! text on SQLite and PostgreSQL (numbered `$n` parameters, `ON CONFLICT`, `RETURNING`,
//! row values), so one macro body serves both; what differs (how a write transaction
//! begins, the migrator, later SKIP LOCKED and LISTEN/NOTIFY) lives in each backend.

pub(super) const TENANT_COLS: &str =
    "id, slug, name, timezone, active, revision, created_at, updated_at";
pub(super) const SETTINGS_COLS: &str = "bot_enabled, auto_reply, ai_responses, confidence_threshold, \
    fallback_text, non_text_reply, quiet_hours_start, quiet_hours_end, quiet_hours_policy, \
    response_delay_seconds, max_messages_per_hour, max_messages_per_user_per_day, \
    escalation_categories, escalation_phone, escalation_email, log_message_text, log_decisions, \
    handoff_idle_minutes, burst_window_seconds, after_hours_text, escalation_ack_text, \
    llm_monthly_token_budget, window_template_name, window_template_language";
/// The message loop's tables, which `delete_tenant` and `sweep_deleted_tenant` empty of
/// a deleted tenant's rows themselves.
pub(super) const LOOP_TABLES: [&str; 5] = [
    "message_statuses",
    "outbound_messages",
    "inbound_messages",
    "conversations",
    "contacts",
];
pub(super) const TRAINING_COLS: &str =
    "id, kind, question, answer, examples, category, priority, active, position";
pub(super) const TEMPLATE_COLS: &str =
    "id, name, system_prompt, tone, max_response_length, context_messages, is_default, position";

/// Implements `Store` for `$store` (which has `pool` for reads, `writer` for writes, and
/// inherent `begin_write` and `migrator` functions) over connections of type `$conn`.
macro_rules! impl_store {
    ($store:ty, $conn:ty, $backend:expr) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            fn backend(&self) -> $crate::store::Backend {
                $backend
            }

            async fn tenant_changes(&self) -> StoreResult<Option<Box<dyn $crate::store::ChangeFeed>>> {
                self.change_feed().await
            }

            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1").execute(self.read_pool()).await?;
                Ok(())
            }

            async fn favour_writer(&self, nice: i32) -> std::io::Result<bool> {
                match self.hot_writer() {
                    Some(hot) => hot.set_nice(nice).await.map(|()| true),
                    None => Ok(false),
                }
            }

            async fn close(&self) {
                self.writer.close().await;
                self.pool.close().await;
                self.close_scoped().await;
            }

            async fn migrate_up(&self) -> StoreResult<Vec<MigrationStatus>> {
                Self::migrator().run(self.write_pool()).await?;
                self.migration_status().await
            }

            async fn migrate_up_to(&self, version: i64) -> StoreResult<()> {
                Self::migrator().run_to(version, self.write_pool()).await?;
                Ok(())
            }

            async fn migrate_down(&self) -> StoreResult<Option<MigrationStatus>> {
                let applied: Vec<MigrationStatus> = self
                    .migration_status()
                    .await?
                    .into_iter()
                    .filter(|m| m.applied)
                    .collect();
                let Some(last) = applied.last().cloned() else {
                    return Ok(None);
                };
                let target = applied.len().checked_sub(2).map(|i| applied[i].version).unwrap_or(0);
                Self::migrator().undo(&self.writer, target).await?;
                Ok(Some(MigrationStatus { applied: false, ..last }))
            }

            async fn migration_status(&self) -> StoreResult<Vec<MigrationStatus>> {
                use sqlx::migrate::Migrate;
                let mut conn = self.read_pool().acquire().await?;
                conn.ensure_migrations_table("_sqlx_migrations").await?;
                let applied: Vec<i64> = conn
                    .list_applied_migrations("_sqlx_migrations")
                    .await?
                    .into_iter()
                    .map(|m| m.version)
                    .collect();
                Ok(Self::migrator()
                    .iter()
                    .filter(|m| !m.migration_type.is_down_migration())
                    .map(|m| MigrationStatus {
                        version: m.version,
                        description: m.description.to_string(),
                        applied: applied.contains(&m.version),
                    })
                    .collect())
            }

            async fn create_tenant(&self, id: TenantId, plan: &Plan<Sealed>, now: DateTime<Utc>) -> StoreResult<Tenant> {
                let profile = plan
                    .profile
                    .as_ref()
                    .ok_or_else(|| StoreError::Invalid("a new tenant needs a profile".into()))?;
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO tenants (id, slug, name, timezone, active, revision, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, 1, $6, $6)",
                )
                .bind(id.0)
                .bind(&profile.slug)
                .bind(&profile.name)
                .bind(&profile.timezone)
                .bind(profile.active)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                Self::apply_plan(&mut tx, id, plan, now).await?;
                let t = Self::tenant_on(&mut tx, id).await?;
                tx.commit().await?;
                Ok(t)
            }

            async fn update_tenant(
                &self,
                id: TenantId,
                expected_revision: i64,
                plan: &Plan<Sealed>,
                now: DateTime<Utc>,
            ) -> StoreResult<Tenant> {
                let mut tx = self.begin_write().await?;
                let bumped = sqlx::query(
                    "UPDATE tenants SET revision = revision + 1, updated_at = $2 WHERE id = $1 AND revision = $3",
                )
                .bind(id.0)
                .bind(now)
                .bind(expected_revision)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if bumped == 0 {
                    // Tell a missing tenant from one changed by someone else.
                    Self::tenant_on(&mut tx, id).await?;
                    return Err(StoreError::StaleRevision { expected: expected_revision });
                }
                if let Some(p) = &plan.profile {
                    sqlx::query("UPDATE tenants SET slug = $2, name = $3, timezone = $4, active = $5 WHERE id = $1")
                        .bind(id.0)
                        .bind(&p.slug)
                        .bind(&p.name)
                        .bind(&p.timezone)
                        .bind(p.active)
                        .execute(&mut *tx)
                        .await?;
                }
                Self::apply_plan(&mut tx, id, plan, now).await?;
                let t = Self::tenant_on(&mut tx, id).await?;
                tx.commit().await?;
                Ok(t)
            }

            async fn get_tenant(&self, id: TenantId) -> StoreResult<Tenant> {
                let mut conn = self.read_pool().acquire().await?;
                Self::tenant_on(&mut conn, id).await
            }

            async fn find_tenant_by_slug(&self, slug: &str) -> StoreResult<Option<Tenant>> {
                let row: Option<TenantRow> = sqlx::query_as(Self::TENANT_BY_SLUG)
                    .bind(slug)
                    .fetch_optional(self.read_pool())
                    .await?;
                Ok(row.map(Tenant::from))
            }

            async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
                let sql = format!("SELECT {TENANT_COLS} FROM tenants ORDER BY slug");
                let rows: Vec<TenantRow> = sqlx::query_as(AssertSqlSafe(sql)).fetch_all(self.read_pool()).await?;
                Ok(rows.into_iter().map(Tenant::from).collect())
            }

            async fn list_tenant_revisions(&self) -> StoreResult<Vec<(TenantId, i64)>> {
                let rows: Vec<(Uuid, i64)> = sqlx::query_as("SELECT id, revision FROM tenants")
                    .fetch_all(self.read_pool())
                    .await?;
                Ok(rows.into_iter().map(|(id, r)| (TenantId(id), r)).collect())
            }

            async fn set_tenant_active(&self, id: TenantId, active: bool, now: DateTime<Utc>) -> StoreResult<Tenant> {
                let sql = format!(
                    "UPDATE tenants SET active = $2, revision = revision + 1, updated_at = $3 \
                     WHERE id = $1 RETURNING {TENANT_COLS}"
                );
                let row: Option<TenantRow> = sqlx::query_as(AssertSqlSafe(sql))
                    .bind(id.0)
                    .bind(active)
                    .bind(now)
                    .fetch_optional(self.write_pool())
                    .await?;
                row.map(Tenant::from).ok_or(StoreError::NotFound("tenant"))
            }

            async fn delete_tenant(&self, id: TenantId) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                let n = sqlx::query("DELETE FROM tenants WHERE id = $1")
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if n == 0 {
                    return Err(StoreError::NotFound("tenant"));
                }
                // Everything else goes by its key's ON DELETE CASCADE; the message loop's
                // tables hold no key to tenants on PostgreSQL (migration 0012), so their
                // rows go here, in the same transaction.
                Self::delete_loop_rows(&mut tx, id).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn sweep_deleted_tenant(&self, id: TenantId) -> StoreResult<u64> {
                let mut tx = self.begin_write().await?;
                let n = Self::delete_loop_rows(&mut tx, id).await?;
                tx.commit().await?;
                Ok(n)
            }

            async fn find_tenant_by_channel_account(
                &self,
                channel: Channel,
                provider_account_id: &str,
            ) -> StoreResult<Option<TenantId>> {
                let id: Option<Option<Uuid>> = sqlx::query_scalar(Self::TENANT_BY_ACCOUNT)
                    .bind(channel.as_str())
                    .bind(provider_account_id)
                    .fetch_optional(self.read_pool())
                    .await?;
                Ok(id.flatten().map(TenantId))
            }

            async fn load_tenant_state(&self, id: TenantId) -> StoreResult<Option<TenantState>> {
                let mut conn = self.read_pool().acquire().await?;
                let tenant = match Self::tenant_on(&mut conn, id).await {
                    Ok(t) => t,
                    Err(StoreError::NotFound(_)) => return Ok(None),
                    Err(e) => return Err(e),
                };
                let settings = Self::settings_on(&mut conn, id).await?;
                let wa: Option<ChannelAccountRow> = sqlx::query_as(
                    "SELECT channel, provider_account_id, business_account_id, display_phone_number, \
                     token_expires_at, messages_per_second FROM channel_accounts \
                     WHERE tenant_id = $1 AND channel = 'whatsapp'",
                )
                .bind(id.0)
                .fetch_optional(&mut *conn)
                .await?;
                let ai: Option<AiConfigRow> =
                    sqlx::query_as("SELECT provider, base_url, model FROM ai_configs WHERE tenant_id = $1")
                        .bind(id.0)
                        .fetch_optional(&mut *conn)
                        .await?;
                let templates = Self::templates_on(&mut conn, id).await?;
                let training = Self::training_on(&mut conn, id).await?;
                Ok(Some(TenantState {
                    tenant,
                    settings,
                    whatsapp: wa.map(ChannelAccount::try_from).transpose()?,
                    ai: ai.map(AiConfig::try_from).transpose()?,
                    templates,
                    training,
                }))
            }

            async fn find_settings(&self, tenant: TenantId) -> StoreResult<Option<ControlSettings>> {
                let mut conn = self.read_pool().acquire().await?;
                Self::settings_on(&mut conn, tenant).await
            }

            async fn list_templates(&self, tenant: TenantId) -> StoreResult<Vec<Template>> {
                let mut conn = self.read_pool().acquire().await?;
                Self::templates_on(&mut conn, tenant).await
            }

            async fn list_training_items(&self, tenant: TenantId) -> StoreResult<Vec<TrainingItem>> {
                let mut conn = self.read_pool().acquire().await?;
                Self::training_on(&mut conn, tenant).await
            }

            async fn find_training_item(
                &self,
                tenant: TenantId,
                id: TrainingItemId,
            ) -> StoreResult<Option<TrainingItem>> {
                let sql = format!("SELECT {TRAINING_COLS} FROM training_items WHERE tenant_id = $1 AND id = $2");
                let row: Option<TrainingRow> = sqlx::query_as(AssertSqlSafe(sql))
                    .bind(tenant.0)
                    .bind(id.0)
                    .fetch_optional(self.read_pool())
                    .await?;
                row.map(TrainingItem::try_from).transpose()
            }

            async fn list_secrets(&self, tenant: TenantId) -> StoreResult<Vec<SecretRecord>> {
                let rows: Vec<SecretRow> = sqlx::query_as(
                    "SELECT tenant_id, name, key_id, nonce, ciphertext FROM tenant_secrets \
                     WHERE tenant_id = $1 ORDER BY name",
                )
                .bind(tenant.0)
                .fetch_all(self.read_pool())
                .await?;
                Ok(rows.into_iter().map(SecretRecord::from).collect())
            }

            async fn list_all_secrets(
                &self,
                after: Option<(TenantId, String)>,
                limit: i64,
            ) -> StoreResult<Vec<SecretRecord>> {
                let rows: Vec<SecretRow> = match after {
                    None => sqlx::query_as(
                        "SELECT tenant_id, name, key_id, nonce, ciphertext FROM tenant_secrets \
                         ORDER BY tenant_id, name LIMIT $1",
                    )
                    .bind(limit)
                    .fetch_all(self.read_pool())
                    .await?,
                    Some((t, name)) => sqlx::query_as(
                        "SELECT tenant_id, name, key_id, nonce, ciphertext FROM tenant_secrets \
                         WHERE (tenant_id, name) > ($1, $2) ORDER BY tenant_id, name LIMIT $3",
                    )
                    .bind(t.0)
                    .bind(name)
                    .bind(limit)
                    .fetch_all(self.read_pool())
                    .await?,
                };
                Ok(rows.into_iter().map(SecretRecord::from).collect())
            }

            async fn replace_secret(&self, record: &SecretRecord, new: &Sealed, now: DateTime<Utc>) -> StoreResult<bool> {
                let n = sqlx::query(
                    "UPDATE tenant_secrets SET key_id = $3, nonce = $4, ciphertext = $5, updated_at = $6 \
                     WHERE tenant_id = $1 AND name = $2 AND key_id = $7 AND nonce = $8 AND ciphertext = $9",
                )
                .bind(record.tenant_id.0)
                .bind(&record.name)
                .bind(&new.key_id)
                .bind(&new.nonce)
                .bind(&new.ciphertext)
                .bind(now)
                .bind(&record.sealed.key_id)
                .bind(&record.sealed.nonce)
                .bind(&record.sealed.ciphertext)
                .execute(self.write_pool())
                .await?
                .rows_affected();
                Ok(n == 1)
            }

            async fn count_secrets_by_key(&self) -> StoreResult<Vec<(String, i64)>> {
                Ok(sqlx::query_as(
                    "SELECT key_id, COUNT(*) FROM tenant_secrets GROUP BY key_id ORDER BY key_id",
                )
                .fetch_all(self.read_pool())
                .await?)
            }
        }

        impl $store {
            /// Deletes the message loop's rows of `id` if no tenant `id` exists (each
            /// statement checks, so a live tenant's rows are never touched); the number
            /// deleted.
            async fn delete_loop_rows(conn: &mut $conn, id: TenantId) -> StoreResult<u64> {
                let mut n = 0;
                for table in LOOP_TABLES {
                    n += sqlx::query(AssertSqlSafe(format!(
                        "DELETE FROM {table} WHERE tenant_id = $1 \
                         AND NOT EXISTS (SELECT 1 FROM tenants WHERE id = $1)"
                    )))
                    .bind(id.0)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
                }
                Ok(n)
            }

            async fn tenant_on(conn: &mut $conn, id: TenantId) -> StoreResult<Tenant> {
                let sql = format!("SELECT {TENANT_COLS} FROM tenants WHERE id = $1");
                let row: Option<TenantRow> = sqlx::query_as(AssertSqlSafe(sql))
                    .bind(id.0)
                    .fetch_optional(&mut *conn)
                    .await?;
                row.map(Tenant::from).ok_or(StoreError::NotFound("tenant"))
            }

            async fn settings_on(conn: &mut $conn, id: TenantId) -> StoreResult<Option<ControlSettings>> {
                let sql = format!("SELECT {SETTINGS_COLS} FROM control_settings WHERE tenant_id = $1");
                let row: Option<SettingsRow> = sqlx::query_as(AssertSqlSafe(sql))
                    .bind(id.0)
                    .fetch_optional(&mut *conn)
                    .await?;
                row.map(ControlSettings::try_from).transpose()
            }

            async fn templates_on(conn: &mut $conn, id: TenantId) -> StoreResult<Vec<Template>> {
                let sql = format!("SELECT {TEMPLATE_COLS} FROM templates WHERE tenant_id = $1 ORDER BY position, name");
                let rows: Vec<TemplateRow> = sqlx::query_as(AssertSqlSafe(sql))
                    .bind(id.0)
                    .fetch_all(&mut *conn)
                    .await?;
                Ok(rows.into_iter().map(Template::from).collect())
            }

            async fn training_on(conn: &mut $conn, id: TenantId) -> StoreResult<Vec<TrainingItem>> {
                let sql = format!("SELECT {TRAINING_COLS} FROM training_items WHERE tenant_id = $1 ORDER BY position, question");
                let rows: Vec<TrainingRow> = sqlx::query_as(AssertSqlSafe(sql))
                    .bind(id.0)
                    .fetch_all(&mut *conn)
                    .await?;
                convert(rows)
            }

            /// Writes every part of `plan` except the profile, inside the caller's transaction.
            async fn apply_plan(conn: &mut $conn, t: TenantId, plan: &Plan<Sealed>, now: DateTime<Utc>) -> StoreResult<()> {
                for a in &plan.audit {
                    Self::audit_on(conn, t, a).await?;
                }
                if let Some(s) = &plan.settings {
                    Self::put_settings(conn, t, s, now).await?;
                }
                match &plan.whatsapp {
                    Some(Change::Set(a)) => Self::put_channel_account(conn, t, a, now).await?,
                    Some(Change::Remove) => {
                        sqlx::query("DELETE FROM channel_accounts WHERE tenant_id = $1 AND channel = 'whatsapp'")
                            .bind(t.0)
                            .execute(&mut *conn)
                            .await?;
                    }
                    None => {}
                }
                match &plan.ai {
                    Some(Change::Set(a)) => {
                        sqlx::query(
                            "INSERT INTO ai_configs (tenant_id, provider, base_url, model, updated_at) \
                             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id) DO UPDATE SET \
                             provider = excluded.provider, base_url = excluded.base_url, \
                             model = excluded.model, updated_at = excluded.updated_at",
                        )
                        .bind(t.0)
                        .bind(a.provider.as_str())
                        .bind(&a.base_url)
                        .bind(&a.model)
                        .bind(now)
                        .execute(&mut *conn)
                        .await?;
                    }
                    Some(Change::Remove) => {
                        sqlx::query("DELETE FROM ai_configs WHERE tenant_id = $1")
                            .bind(t.0)
                            .execute(&mut *conn)
                            .await?;
                    }
                    None => {}
                }
                if plan.secrets.iter().any(|(n, c)| {
                    *n == crate::domain::secret_field::WHATSAPP_ACCESS_TOKEN && matches!(c, Change::Set(_))
                }) {
                    sqlx::query("UPDATE channel_accounts SET token_status = 'ok' WHERE tenant_id = $1 AND channel = 'whatsapp'")
                        .bind(t.0)
                        .execute(&mut *conn)
                        .await?;
                }
                for (name, change) in &plan.secrets {
                    match change {
                        Change::Set(s) => {
                            sqlx::query(
                                "INSERT INTO tenant_secrets (tenant_id, name, key_id, nonce, ciphertext, updated_at) \
                                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, name) DO UPDATE SET \
                                 key_id = excluded.key_id, nonce = excluded.nonce, \
                                 ciphertext = excluded.ciphertext, updated_at = excluded.updated_at",
                            )
                            .bind(t.0)
                            .bind(*name)
                            .bind(&s.key_id)
                            .bind(&s.nonce)
                            .bind(&s.ciphertext)
                            .bind(now)
                            .execute(&mut *conn)
                            .await?;
                        }
                        Change::Remove => {
                            sqlx::query("DELETE FROM tenant_secrets WHERE tenant_id = $1 AND name = $2")
                                .bind(t.0)
                                .bind(*name)
                                .execute(&mut *conn)
                                .await?;
                        }
                    }
                }
                Self::apply_templates(conn, t, &plan.templates, now).await?;
                Self::apply_training(conn, t, &plan.training, now).await
            }

            async fn put_settings(conn: &mut $conn, t: TenantId, s: &ControlSettings, now: DateTime<Utc>) -> StoreResult<()> {
                let q = s.quiet_hours;
                let sql = format!(
                    "INSERT INTO control_settings (tenant_id, {SETTINGS_COLS}, updated_at) VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, \
                     $21, $22, $23, $24, $25, $26) \
                     ON CONFLICT (tenant_id) DO UPDATE SET bot_enabled = excluded.bot_enabled, \
                     auto_reply = excluded.auto_reply, ai_responses = excluded.ai_responses, \
                     confidence_threshold = excluded.confidence_threshold, fallback_text = excluded.fallback_text, \
                     non_text_reply = excluded.non_text_reply, quiet_hours_start = excluded.quiet_hours_start, \
                     quiet_hours_end = excluded.quiet_hours_end, quiet_hours_policy = excluded.quiet_hours_policy, \
                     response_delay_seconds = excluded.response_delay_seconds, \
                     max_messages_per_hour = excluded.max_messages_per_hour, \
                     max_messages_per_user_per_day = excluded.max_messages_per_user_per_day, \
                     escalation_categories = excluded.escalation_categories, \
                     escalation_phone = excluded.escalation_phone, escalation_email = excluded.escalation_email, \
                     log_message_text = excluded.log_message_text, log_decisions = excluded.log_decisions, \
                     handoff_idle_minutes = excluded.handoff_idle_minutes, \
                     burst_window_seconds = excluded.burst_window_seconds, \
                     after_hours_text = excluded.after_hours_text, escalation_ack_text = excluded.escalation_ack_text, \
                     llm_monthly_token_budget = excluded.llm_monthly_token_budget, \
                     window_template_name = excluded.window_template_name, \
                     window_template_language = excluded.window_template_language, \
                     updated_at = excluded.updated_at"
                );
                sqlx::query(AssertSqlSafe(sql))
                    .bind(t.0)
                    .bind(s.bot_enabled)
                    .bind(s.auto_reply)
                    .bind(s.ai_responses)
                    .bind(s.confidence_threshold)
                    .bind(&s.fallback_text)
                    .bind(&s.non_text_reply)
                    .bind(q.map(|q| q.start))
                    .bind(q.map(|q| q.end))
                    .bind(q.map(|q| q.policy.as_str()))
                    .bind(s.response_delay_seconds)
                    .bind(s.max_messages_per_hour)
                    .bind(s.max_messages_per_user_per_day)
                    .bind(Json(&s.escalation_categories))
                    .bind(&s.escalation_phone)
                    .bind(&s.escalation_email)
                    .bind(s.log_message_text)
                    .bind(s.log_decisions)
                    .bind(s.handoff_idle_minutes)
                    .bind(s.burst_window_seconds)
                    .bind(&s.after_hours_text)
                    .bind(&s.escalation_ack_text)
                    .bind(s.llm_monthly_token_budget)
                    .bind(s.window_template.as_ref().map(|t| t.name.as_str()))
                    .bind(s.window_template.as_ref().map(|t| t.language.as_str()))
                    .bind(now)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            }

            async fn put_channel_account(conn: &mut $conn, t: TenantId, a: &ChannelAccount, now: DateTime<Utc>) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO channel_accounts (tenant_id, channel, provider_account_id, business_account_id, \
                     display_phone_number, token_expires_at, messages_per_second, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (tenant_id, channel) DO UPDATE SET \
                     provider_account_id = excluded.provider_account_id, \
                     business_account_id = excluded.business_account_id, \
                     display_phone_number = excluded.display_phone_number, \
                     token_expires_at = excluded.token_expires_at, \
                     messages_per_second = excluded.messages_per_second, updated_at = excluded.updated_at",
                )
                .bind(t.0)
                .bind(a.channel.as_str())
                .bind(&a.provider_account_id)
                .bind(&a.business_account_id)
                .bind(&a.display_phone_number)
                .bind(a.token_expires_at)
                .bind(a.messages_per_second)
                .bind(now)
                .execute(&mut *conn)
                .await?;
                Ok(())
            }

            async fn apply_templates(
                conn: &mut $conn,
                t: TenantId,
                c: &ItemChanges<Template, TemplateId>,
                now: DateTime<Utc>,
            ) -> StoreResult<()> {
                for id in &c.delete {
                    let n = sqlx::query("DELETE FROM templates WHERE tenant_id = $1 AND id = $2")
                        .bind(t.0)
                        .bind(id.0)
                        .execute(&mut *conn)
                        .await?
                        .rows_affected();
                    if n == 0 {
                        return Err(StoreError::NotFound("template"));
                    }
                }
                // Clear a default before setting another, so "one default" holds at every step.
                let mut updates: Vec<&Template> = c.update.iter().collect();
                updates.sort_by_key(|t| t.is_default);
                for tpl in updates {
                    let n = sqlx::query(
                        "UPDATE templates SET name = $3, system_prompt = $4, tone = $5, max_response_length = $6, \
                         is_default = $7, position = $8, updated_at = $9, context_messages = $10 \
                         WHERE tenant_id = $1 AND id = $2",
                    )
                    .bind(t.0)
                    .bind(tpl.id.0)
                    .bind(&tpl.name)
                    .bind(&tpl.system_prompt)
                    .bind(&tpl.tone)
                    .bind(tpl.max_response_length)
                    .bind(tpl.is_default)
                    .bind(tpl.position)
                    .bind(now)
                    .bind(tpl.context_messages)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
                    if n == 0 {
                        return Err(StoreError::NotFound("template"));
                    }
                }
                for tpl in &c.insert {
                    sqlx::query(
                        "INSERT INTO templates (tenant_id, id, name, system_prompt, tone, max_response_length, \
                         is_default, position, updated_at, context_messages) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    )
                    .bind(t.0)
                    .bind(tpl.id.0)
                    .bind(&tpl.name)
                    .bind(&tpl.system_prompt)
                    .bind(&tpl.tone)
                    .bind(tpl.max_response_length)
                    .bind(tpl.is_default)
                    .bind(tpl.position)
                    .bind(now)
                    .bind(tpl.context_messages)
                    .execute(&mut *conn)
                    .await?;
                }
                Ok(())
            }

            async fn apply_training(
                conn: &mut $conn,
                t: TenantId,
                c: &ItemChanges<TrainingItem, TrainingItemId>,
                now: DateTime<Utc>,
            ) -> StoreResult<()> {
                for id in &c.delete {
                    let n = sqlx::query("DELETE FROM training_items WHERE tenant_id = $1 AND id = $2")
                        .bind(t.0)
                        .bind(id.0)
                        .execute(&mut *conn)
                        .await?
                        .rows_affected();
                    if n == 0 {
                        return Err(StoreError::NotFound("training item"));
                    }
                }
                for (i, item) in c.update.iter().chain(c.insert.iter()).enumerate() {
                    let insert = i >= c.update.len();
                    let sql = if insert {
                        "INSERT INTO training_items (tenant_id, id, kind, question, answer, examples, category, \
                         priority, active, position, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                    } else {
                        "UPDATE training_items SET kind = $3, question = $4, answer = $5, examples = $6, \
                         category = $7, priority = $8, active = $9, position = $10, updated_at = $11 \
                         WHERE tenant_id = $1 AND id = $2"
                    };
                    let n = sqlx::query(sql)
                        .bind(t.0)
                        .bind(item.id.0)
                        .bind(item.kind.as_str())
                        .bind(&item.question)
                        .bind(&item.answer)
                        .bind(Json(&item.examples))
                        .bind(&item.category)
                        .bind(item.priority)
                        .bind(item.active)
                        .bind(item.position)
                        .bind(now)
                        .execute(&mut *conn)
                        .await?
                        .rows_affected();
                    if n == 0 {
                        return Err(StoreError::NotFound("training item"));
                    }
                }
                Ok(())
            }
        }
    };
}

pub(super) use impl_store;
