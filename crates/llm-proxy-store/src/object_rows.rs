//! The `upstream_objects` table (core's `UpstreamObject`): files and batches made through the
//! gateway, each readable by its owning key alone. The SQL is the same on both backends.

use llm_proxy_core::UnixMillis;
use llm_proxy_core::store::StoreError;
use llm_proxy_core::upstream_object::{ObjectKind, UpstreamObject};

macro_rules! object_columns {
    () => {
        "id, kind, provider, key_id, purpose, created_at, object"
    };
}

/// Recording an object again (a batch seen anew) updates what the provider said of it, never who
/// owns it or where it is.
pub(crate) const PUT_OBJECT: &str = concat!(
    "INSERT INTO upstream_objects (",
    object_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO UPDATE SET object = excluded.object, ",
    "purpose = COALESCE(excluded.purpose, upstream_objects.purpose) ",
    "WHERE upstream_objects.key_id = excluded.key_id AND upstream_objects.kind = excluded.kind"
);

pub(crate) const GET_OBJECT: &str =
    concat!("SELECT ", object_columns!(), " FROM upstream_objects WHERE id = $1 AND key_id = $2");

pub(crate) const DELETE_OBJECT: &str = "DELETE FROM upstream_objects WHERE id = $1 AND key_id = $2";

/// A key's objects of one kind (`$3` a purpose or NULL for all), after the object `$4` (or from
/// the start when NULL), `$5` of them. An `after` that is not this key's gives an empty page.
macro_rules! list_objects {
    ($cmp:literal, $order:literal) => {
        concat!(
            "SELECT ",
            object_columns!(),
            " FROM upstream_objects WHERE key_id = $1 AND kind = $2 ",
            "AND (CAST($3 AS TEXT) IS NULL OR purpose = $3) ",
            "AND (CAST($4 AS TEXT) IS NULL OR (created_at, id) ",
            $cmp,
            " (SELECT created_at, id FROM upstream_objects WHERE id = $4 AND key_id = $1)) ",
            "ORDER BY created_at ",
            $order,
            ", id ",
            $order,
            " LIMIT $5"
        )
    };
}
pub(crate) const LIST_OBJECTS_DESC: &str = list_objects!("<", "DESC");
pub(crate) const LIST_OBJECTS_ASC: &str = list_objects!(">", "ASC");

#[derive(sqlx::FromRow)]
pub(crate) struct ObjectRow {
    id: String,
    kind: String,
    provider: String,
    key_id: String,
    purpose: Option<String>,
    created_at: i64,
    object: String,
}

impl TryFrom<ObjectRow> for UpstreamObject {
    type Error = StoreError;

    fn try_from(r: ObjectRow) -> Result<Self, StoreError> {
        let kind = ObjectKind::parse(&r.kind)
            .ok_or_else(|| StoreError::Other(format!("upstream object {} has an unknown kind", r.id)))?;
        Ok(UpstreamObject {
            id: r.id,
            kind,
            provider: r.provider,
            key_id: r.key_id,
            purpose: r.purpose,
            created_at: UnixMillis::from_i64(r.created_at),
            object: r.object,
        })
    }
}

pub(crate) fn objects_from_rows(rows: Vec<ObjectRow>) -> Result<Vec<UpstreamObject>, StoreError> {
    rows.into_iter().map(UpstreamObject::try_from).collect()
}
