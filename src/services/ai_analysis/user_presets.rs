//! Saved presets behind the preset routes: validate a new one, create, update, publish or
//! unpublish, delete, each recorded in the audit log.

use crate::ai::presets::{self, Invalid, Preset};
use crate::domain::{ids::DocId, timestamp::now_ms};
use crate::services::audit;
use crate::store::{StoreError, Stores, User};
use serde_json::Value;

/// Validates a new preset body into a stored preset owned by `user`.
pub fn new_preset(user: &User, body: &Value) -> Result<Preset, Invalid> {
    let fields = presets::validate(body, None)?;
    let visibility = presets::visibility(body.get("visibility"))?;
    let now = now_ms();
    Ok(Preset {
        id: DocId::new(),
        owner_user_id: user.id,
        owner_email: user.email.clone(),
        visibility,
        fields,
        version: 1,
        created_at: now,
        updated_at: now,
    })
}

/// Stores a new preset of its owner (`code`: `AI_ANALYSIS_PRESET_CREATED`, or
/// `AI_ANALYSIS_PRESET_AI_GENERATED` when the model wrote it) and records it in the audit log.
pub async fn create_preset(stores: &Stores, preset: &Preset, code: &str) -> Result<(), StoreError> {
    stores.ai.create_preset(preset).await?;
    audit::action(code)
        .note(preset.id.to_hex())
        .record(stores)
        .await;
    Ok(())
}

/// Replaces a preset's fields (`code`: `AI_ANALYSIS_PRESET_UPDATED` or `…_AI_REFINED`).
pub async fn update_preset(
    stores: &Stores,
    id: DocId,
    fields: &crate::ai::presets::PresetFields,
    code: &str,
) -> Result<Preset, StoreError> {
    let preset = stores.ai.update_preset(id, fields).await?;
    audit::action(code).note(id.to_hex()).record(stores).await;
    Ok(preset)
}

/// Makes a preset `public` (published) or `private` (unpublished).
pub async fn set_preset_visibility(
    stores: &Stores,
    id: DocId,
    visibility: &str,
) -> Result<Preset, StoreError> {
    let preset = stores.ai.set_preset_visibility(id, visibility).await?;
    let code = if visibility == "public" {
        crate::domain::audit::codes::AI_ANALYSIS_PRESET_PUBLISHED
    } else {
        crate::domain::audit::codes::AI_ANALYSIS_PRESET_UNPUBLISHED
    };
    audit::action(code).note(id.to_hex()).record(stores).await;
    Ok(preset)
}

/// Deletes a preset (`NotFound` when it is already gone).
pub async fn delete_preset(stores: &Stores, id: DocId) -> Result<(), StoreError> {
    stores.ai.delete_preset(id).await?;
    audit::action(crate::domain::audit::codes::AI_ANALYSIS_PRESET_DELETED)
        .note(id.to_hex())
        .record(stores)
        .await;
    Ok(())
}
