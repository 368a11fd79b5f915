//! Pure decisions about a BusinessProfile: the create request, the update
//! that brings Plivo's profile in line with the spec, and which resource wins
//! when two claim the same EIN. No I/O here.

use serde::Serialize;

use crate::{
    api::{BusinessProfile, BusinessProfileSpec},
    plivo::{self, CreateProfile, Profile, UpdateProfile},
};

/// Returns the wire string of a spec enum (its serde name, e.g. `NON_PROFIT`).
fn wire<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => text,
        _ => String::new(),
    }
}

fn address(spec: &crate::api::Address) -> plivo::Address {
    plivo::Address {
        street: spec.street.clone(),
        city: spec.city.clone(),
        state: spec.state.clone(),
        postal_code: spec.postal_code.clone(),
        country: spec.country.clone(),
    }
}

fn contact(spec: &crate::api::AuthorizedContact) -> plivo::AuthorizedContact {
    plivo::AuthorizedContact {
        first_name: spec.first_name.clone(),
        last_name: spec.last_name.clone(),
        email: spec.email.clone(),
        title: spec.title.clone(),
        seniority: spec.seniority.as_ref().map(wire).unwrap_or_default(),
        phone: spec.phone.clone(),
    }
}

/// Builds the create request, or names the spec field Plivo requires that is missing.
pub fn create_request(profile: &BusinessProfile) -> Result<CreateProfile, &'static str> {
    let spec = &profile.spec;
    let ein = profile.spec.ein_digits().map_err(|_| "ein")?;
    Ok(CreateProfile {
        profile_alias: profile.effective_alias(),
        customer_type: wire(spec.customer_type.as_ref().ok_or("customerType")?),
        entity_type: wire(spec.entity_type.as_ref().ok_or("entityType")?),
        company_name: spec.company_name.clone().ok_or("companyName")?,
        vertical: wire(spec.vertical.as_ref().ok_or("vertical")?),
        address: address(spec.address.as_ref().ok_or("address")?),
        authorized_contact: contact(
            spec.authorized_contact
                .as_ref()
                .ok_or("authorizedContact")?,
        ),
        ein: Some(ein),
        ein_issuing_country: Some(profile.spec.effective_ein_issuing_country().to_string()),
        stock_symbol: spec.stock_symbol.clone(),
        stock_exchange: spec.stock_exchange.as_ref().map(wire),
        alt_business_id: spec.alt_business_id.clone(),
        alt_business_id_type: spec.alt_business_id_type.as_ref().map(wire),
        website: spec.website.clone(),
        plivo_subaccount: None,
        business_contact_email: spec.business_contact_email.clone(),
        doing_business_as: spec.doing_business_as.clone(),
    })
}

/// The differences between Plivo's profile and the spec.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Drift {
    /// Changes Plivo accepts on an existing profile.
    pub update: UpdateProfile,
    /// Spec fields (camelCase) that differ but that Plivo does not let an existing profile
    /// change, each with the value Plivo has (empty when it has none).
    pub immutable: Vec<(&'static str, String)>,
}

/// Compares the fields the spec sets with Plivo's profile. Fields the spec
/// leaves unset are not managed, so an adopted profile keeps what it has.
pub fn drift(profile: &BusinessProfile, plivo: &Profile) -> Drift {
    let spec: &BusinessProfileSpec = &profile.spec;
    let mut drift = Drift::default();
    let update = &mut drift.update;

    if let Some(value) = &spec.entity_type
        && !same(&wire(value), plivo.entity_type.as_deref())
    {
        update.entity_type = Some(wire(value));
    }
    if let Some(value) = &spec.company_name
        && !same(value, plivo.company_name.as_deref())
    {
        update.company_name = Some(value.clone());
    }
    if let Some(value) = &spec.vertical
        && !same(&wire(value), plivo.vertical.as_deref())
    {
        update.vertical = Some(wire(value));
    }
    if let Some(value) = &spec.address
        && !same_address(&address(value), plivo.address.as_ref())
    {
        update.address = Some(address(value));
    }
    if let Some(value) = &spec.authorized_contact
        && !same_contact(&contact(value), plivo.authorized_contact.as_ref())
    {
        update.authorized_contact = Some(contact(value));
    }
    if let Some(value) = &spec.website
        && !same(value, plivo.website.as_deref())
    {
        update.website = Some(value.clone());
    }
    if let Some(value) = &spec.business_contact_email
        && !same(value, plivo.business_contact_email.as_deref())
    {
        update.business_contact_email = Some(value.clone());
    }
    if let Ok(ein) = profile.spec.ein_digits()
        && digits(&ein) != digits(plivo.ein.as_deref().unwrap_or_default())
    {
        update.ein = Some(ein);
    }
    if spec.ein_issuing_country.is_some()
        && !same(
            profile.spec.effective_ein_issuing_country(),
            plivo.ein_issuing_country.as_deref(),
        )
    {
        update.ein_issuing_country = Some(profile.spec.effective_ein_issuing_country().to_string());
    }
    if let Some(value) = &spec.alt_business_id
        && !same(value, plivo.alt_business_id.as_deref())
    {
        update.alt_business_id = Some(value.clone());
    }
    if let Some(value) = &spec.alt_business_id_type
        && !same(&wire(value), plivo.alt_business_id_type.as_deref())
    {
        update.alt_business_id_type = Some(wire(value));
    }
    if let Some(value) = &spec.doing_business_as
        && !same(value, plivo.doing_business_as.as_deref())
    {
        update.doing_business_as = Some(value.clone());
    }

    if let Some(value) = &spec.profile_alias
        && !same(value, plivo.profile_alias.as_deref())
    {
        drift.immutable.push((
            "profileAlias",
            plivo.profile_alias.clone().unwrap_or_default(),
        ));
    }
    if let Some(value) = &spec.customer_type
        && !same(&wire(value), plivo.customer_type.as_deref())
    {
        drift.immutable.push((
            "customerType",
            plivo.customer_type.clone().unwrap_or_default(),
        ));
    }
    if let Some(value) = &spec.stock_symbol
        && !same(value, plivo.stock_symbol.as_deref())
    {
        drift.immutable.push((
            "stockSymbol",
            plivo.stock_symbol.clone().unwrap_or_default(),
        ));
    }
    if let Some(value) = &spec.stock_exchange
        && !same(&wire(value), plivo.stock_exchange.as_deref())
    {
        drift.immutable.push((
            "stockExchange",
            plivo.stock_exchange.clone().unwrap_or_default(),
        ));
    }
    drift
}

/// Plivo echoes values with other case and spacing than it was sent, so
/// strings are compared trimmed and without regard to ASCII case.
fn same(desired: &str, actual: Option<&str>) -> bool {
    desired
        .trim()
        .eq_ignore_ascii_case(actual.unwrap_or_default().trim())
}

fn digits(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

fn same_address(desired: &plivo::Address, actual: Option<&plivo::Address>) -> bool {
    let Some(actual) = actual else { return false };
    same(&desired.street, Some(&actual.street))
        && same(&desired.city, Some(&actual.city))
        && same(&desired.state, Some(&actual.state))
        && same(&desired.postal_code, Some(&actual.postal_code))
        && same(&desired.country, Some(&actual.country))
}

fn same_contact(
    desired: &plivo::AuthorizedContact,
    actual: Option<&plivo::AuthorizedContact>,
) -> bool {
    let Some(actual) = actual else { return false };
    same(&desired.first_name, Some(&actual.first_name))
        && same(&desired.last_name, Some(&actual.last_name))
        && same(&desired.email, Some(&actual.email))
        && same(&desired.title, Some(&actual.title))
        && (desired.seniority.is_empty() || same(&desired.seniority, Some(&actual.seniority)))
        && digits(&desired.phone) == digits(&actual.phone)
}

/// Returns whether Plivo's profile `candidate` is the one an interrupted create of
/// this resource made: same EIN, the alias the create sent, and created no
/// earlier than the intent was recorded (a minute of clock skew allowed).
pub fn is_own_creation(intent: &crate::api::CreationIntent, candidate: &Profile) -> bool {
    if digits(candidate.ein.as_deref().unwrap_or_default()) != digits(&intent.ein) {
        return false;
    }
    if !same(&intent.profile_alias, candidate.profile_alias.as_deref()) {
        return false;
    }
    let Some(created_at) = candidate.created_at.as_deref() else {
        return true;
    };
    match created_at.parse::<jiff::Timestamp>() {
        Ok(created_at) => created_at >= intent.requested_at.0 - jiff::SignedDuration::from_secs(60),
        Err(_) => true,
    }
}

/// Returns the EIN a profile is looked up by, digits only.
pub fn ein_of(profile: &Profile) -> String {
    digits(profile.ein.as_deref().unwrap_or_default())
}

/// Orders two BusinessProfiles claiming one EIN: one that already has a Plivo
/// profile wins, then the older one; creation times have one-second
/// resolution, so namespace/name break ties.
pub fn claims_first(a: &BusinessProfile, b: &BusinessProfile) -> bool {
    let key = |p: &BusinessProfile| {
        let holds = p.status.as_ref().is_some_and(|s| s.profile_uuid.is_some());
        (
            !holds,
            p.metadata.creation_timestamp.as_ref().map(|t| t.0),
            p.metadata.namespace.clone(),
            p.metadata.name.clone(),
        )
    };
    key(a) < key(b)
}

#[cfg(test)]
mod tests;
