//! One page of a Plivo list answer and its pagination metadata.

use serde::Deserialize;

use super::lenient::{optional_string, optional_u64};

/// Largest page size Plivo accepts (`limit` is 1 to 20).
pub const MAX_PAGE_SIZE: u32 = 20;

/// One page of a list: the items and Plivo's `meta` object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub meta: Meta,
}

/// Pagination metadata; Plivo omits any of these fields at times (profile lists lack `total_count`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Meta {
    #[serde(default, deserialize_with = "optional_u64")]
    pub limit: Option<u64>,
    #[serde(default, deserialize_with = "optional_u64")]
    pub offset: Option<u64>,
    /// Relative path with query of the next page, e.g. `/v1/Account/MA…/Number/?limit=20&offset=20`.
    #[serde(default, deserialize_with = "optional_string")]
    pub next: Option<String>,
    #[serde(default, deserialize_with = "optional_string")]
    pub previous: Option<String>,
    #[serde(default, deserialize_with = "optional_u64")]
    pub total_count: Option<u64>,
}

impl<T> Page<T> {
    /// Whether a page after this one exists, given that this page started at `offset`.
    ///
    /// `next` decides when present; without it, `total_count` decides; an empty page is always last.
    pub fn has_more(&self, offset: u32) -> bool {
        if self.items.is_empty() {
            return false;
        }
        if self.meta.next.is_some() {
            return true;
        }
        match self.meta.total_count {
            Some(total) => u64::from(offset) + (self.items.len() as u64) < total,
            None => false,
        }
    }
}

/// Wire shape of a list answer; the collection key differs per resource.
#[derive(Debug, Deserialize)]
pub(crate) struct ListBody<T> {
    #[serde(default)]
    pub meta: Meta,
    #[serde(default = "Vec::new", alias = "profiles")]
    pub objects: Vec<T>,
}

impl<T> From<ListBody<T>> for Page<T> {
    fn from(body: ListBody<T>) -> Self {
        Page {
            items: body.objects,
            meta: body.meta,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(items: usize, meta: Meta) -> Page<u32> {
        Page {
            items: vec![0; items],
            meta,
        }
    }

    #[test]
    fn next_link_means_more() {
        let meta = Meta {
            next: Some("/v1/Account/MA/Number/?limit=20&offset=20".into()),
            ..Default::default()
        };
        assert!(page(20, meta).has_more(0));
    }

    #[test]
    fn total_count_decides_without_next_link() {
        let meta = Meta {
            total_count: Some(25),
            ..Default::default()
        };
        assert!(page(20, meta.clone()).has_more(0));
        assert!(!page(5, meta).has_more(20));
    }

    #[test]
    fn page_without_hints_or_items_is_last() {
        assert!(!page(20, Meta::default()).has_more(0));
        let meta = Meta {
            next: Some("/x".into()),
            ..Default::default()
        };
        assert!(!page(0, meta).has_more(0));
    }

    #[test]
    fn list_body_reads_objects_or_profiles_and_sparse_meta() {
        let numbers: ListBody<serde_json::Value> = serde_json::from_value(serde_json::json!({
            "api_id": "x", "meta": {"limit": 20, "offset": 0, "next": null, "total_count": 1},
            "objects": [{"number": "1"}]
        }))
        .unwrap();
        assert_eq!(numbers.objects.len(), 1);
        assert_eq!(numbers.meta.total_count, Some(1));

        let profiles: ListBody<serde_json::Value> = serde_json::from_value(serde_json::json!({
            "meta": {"limit": "20"}, "profiles": [{}, {}]
        }))
        .unwrap();
        assert_eq!(profiles.objects.len(), 2);
        assert_eq!(profiles.meta.limit, Some(20));
        assert_eq!(profiles.meta.previous, None);
    }
}
