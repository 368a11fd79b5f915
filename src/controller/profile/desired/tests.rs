use super::*;
use crate::api::{
    Address, AuthorizedContact, BusinessProfileSpec, CustomerType, EntityType, Vertical,
};

fn resource(spec: BusinessProfileSpec) -> BusinessProfile {
    let mut profile = BusinessProfile::new("acme", spec);
    profile.metadata.namespace = Some("team-a".into());
    profile
}

fn full_spec() -> BusinessProfileSpec {
    BusinessProfileSpec {
        customer_type: Some(CustomerType::Direct),
        entity_type: Some(EntityType::Private),
        company_name: Some("Acme Corp".into()),
        vertical: Some(Vertical::Technology),
        ein: "12-3456789".into(),
        address: Some(Address {
            street: "1 Main St".into(),
            city: "Austin".into(),
            state: "TX".into(),
            postal_code: "78701".into(),
            country: "US".into(),
        }),
        authorized_contact: Some(AuthorizedContact {
            first_name: "Ann".into(),
            last_name: "Lee".into(),
            email: "ann@acme.example".into(),
            phone: "+15125550100".into(),
            title: "Ms".into(),
            seniority: None,
        }),
        website: Some("https://acme.example".into()),
        ..BusinessProfileSpec::default()
    }
}

fn plivo_copy(profile: &BusinessProfile) -> Profile {
    let request = create_request(profile).unwrap();
    Profile {
        profile_uuid: "p1".into(),
        profile_alias: Some(request.profile_alias),
        customer_type: Some(request.customer_type),
        entity_type: Some(request.entity_type),
        company_name: Some(request.company_name),
        vertical: Some(request.vertical),
        ein: request.ein,
        ein_issuing_country: request.ein_issuing_country,
        address: Some(request.address),
        authorized_contact: Some(request.authorized_contact),
        website: request.website,
        ..Profile::default()
    }
}

#[test]
fn create_request_uses_wire_names_and_digits() {
    let request = create_request(&resource(full_spec())).unwrap();
    assert_eq!(request.profile_alias, "team-a-acme");
    assert_eq!(request.customer_type, "DIRECT");
    assert_eq!(request.vertical, "TECHNOLOGY");
    assert_eq!(request.ein.as_deref(), Some("123456789"));
    assert_eq!(request.ein_issuing_country.as_deref(), Some("US"));
}

#[test]
fn create_request_names_missing_field() {
    let spec = BusinessProfileSpec {
        company_name: None,
        ..full_spec()
    };
    assert_eq!(create_request(&resource(spec)).unwrap_err(), "companyName");
}

#[test]
fn profile_matching_spec_has_no_drift() {
    let profile = resource(full_spec());
    assert_eq!(drift(&profile, &plivo_copy(&profile)), Drift::default());
}

#[test]
fn case_and_format_differences_are_not_drift() {
    let profile = resource(full_spec());
    let mut plivo = plivo_copy(&profile);
    plivo.ein = Some("12-3456789".into());
    plivo.ein_issuing_country = Some("us".into());
    if let Some(contact) = plivo.authorized_contact.as_mut() {
        contact.phone = "15125550100".into();
    }
    assert_eq!(drift(&profile, &plivo), Drift::default());
}

#[test]
fn changed_website_becomes_an_update() {
    let profile = resource(full_spec());
    let mut plivo = plivo_copy(&profile);
    plivo.website = Some("https://old.example".into());
    let drift = drift(&profile, &plivo);
    assert_eq!(
        drift.update.website.as_deref(),
        Some("https://acme.example")
    );
    assert!(drift.immutable.is_empty());
}

#[test]
fn changed_customer_type_is_immutable() {
    let profile = resource(BusinessProfileSpec {
        customer_type: Some(CustomerType::Reseller),
        ..full_spec()
    });
    let plivo = plivo_copy(&resource(full_spec()));
    let immutable = drift(&profile, &plivo).immutable;
    let fields: Vec<&str> = immutable.iter().map(|(field, _)| *field).collect();
    assert_eq!(fields, vec!["customerType"]);
    assert_eq!(
        immutable[0].1,
        plivo.customer_type.clone().unwrap_or_default()
    );
}

#[test]
fn unset_fields_of_adopted_profile_are_not_managed() {
    let spec = BusinessProfileSpec {
        ein: "123456789".into(),
        profile_uuid: Some("p1".into()),
        ..BusinessProfileSpec::default()
    };
    let plivo = plivo_copy(&resource(full_spec()));
    assert_eq!(drift(&resource(spec), &plivo), Drift::default());
}

#[test]
fn own_creation_needs_alias_ein_and_time() {
    let requested_at = jiff::Timestamp::from_second(1_700_000_000).unwrap();
    let intent = crate::api::CreationIntent {
        profile_alias: "team-a-acme".into(),
        ein: "123456789".into(),
        requested_at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(requested_at),
    };
    let candidate = Profile {
        profile_uuid: "p1".into(),
        profile_alias: Some("team-a-acme".into()),
        ein: Some("123456789".into()),
        created_at: Some("2023-11-14T22:13:30.000000Z".into()),
        ..Profile::default()
    };
    assert!(is_own_creation(&intent, &candidate));

    let other_alias = Profile {
        profile_alias: Some("manual".into()),
        ..candidate.clone()
    };
    assert!(!is_own_creation(&intent, &other_alias));

    let older = Profile {
        created_at: Some("2020-01-01T00:00:00.000000Z".into()),
        ..candidate
    };
    assert!(!is_own_creation(&intent, &older));
}
