//! The Docker VolumeDriver protocol: endpoints, typed requests parsed from
//! JSON bodies by pure functions, and the response bodies.
//!
//! Every call is an HTTP `POST /<Endpoint>` with a JSON body and a JSON
//! answer of content type [`CONTENT_TYPE`]; failures carry a non-empty
//! `Err`. Shapes (docker/go-plugins-helpers `volume/api.go`, moby
//! `volume/drivers/proxy.go`):
//!
//! ```text
//! /Plugin.Activate            {}                          -> {"Implements":["VolumeDriver"]}
//! /VolumeDriver.Create        {"Name","Opts":{..}|null}   -> {"Err":""}
//! /VolumeDriver.Remove        {"Name"}                    -> {"Err":""}
//! /VolumeDriver.Mount         {"Name","ID"}               -> {"Mountpoint","Err":""}
//! /VolumeDriver.Unmount       {"Name","ID"}               -> {"Err":""}
//! /VolumeDriver.Path          {"Name"}                    -> {"Mountpoint","Err":""}
//! /VolumeDriver.Get           {"Name"}                    -> {"Volume":{"Name","Mountpoint","CreatedAt","Status"},"Err":""}
//! /VolumeDriver.List          {}                          -> {"Volumes":[{"Name","Mountpoint","CreatedAt"}],"Err":""}
//! /VolumeDriver.Capabilities  {}                          -> {"Capabilities":{"Scope":"local"}}
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::volume::{self, ValidationError, VolumeOptions};

/// Content type of every protocol answer.
pub const CONTENT_TYPE: &str = "application/vnd.docker.plugins.v1+json";
/// Largest request body accepted, in bytes.
pub const BODY_MAX_BYTES: usize = 64 * 1024;

/// A protocol endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Activate,
    Create,
    Remove,
    Mount,
    Unmount,
    Path,
    Get,
    List,
    Capabilities,
}

impl Endpoint {
    /// All endpoints, in protocol order.
    pub const ALL: [Endpoint; 9] = [
        Endpoint::Activate,
        Endpoint::Create,
        Endpoint::Remove,
        Endpoint::Mount,
        Endpoint::Unmount,
        Endpoint::Path,
        Endpoint::Get,
        Endpoint::List,
        Endpoint::Capabilities,
    ];

    /// The endpoint served at an HTTP path, if any.
    pub fn from_path(path: &str) -> Option<Self> {
        Some(match path {
            "/Plugin.Activate" => Endpoint::Activate,
            "/VolumeDriver.Create" => Endpoint::Create,
            "/VolumeDriver.Remove" => Endpoint::Remove,
            "/VolumeDriver.Mount" => Endpoint::Mount,
            "/VolumeDriver.Unmount" => Endpoint::Unmount,
            "/VolumeDriver.Path" => Endpoint::Path,
            "/VolumeDriver.Get" => Endpoint::Get,
            "/VolumeDriver.List" => Endpoint::List,
            "/VolumeDriver.Capabilities" => Endpoint::Capabilities,
            _ => return None,
        })
    }

    /// The lowercase label used in metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::Activate => "activate",
            Endpoint::Create => "create",
            Endpoint::Remove => "remove",
            Endpoint::Mount => "mount",
            Endpoint::Unmount => "unmount",
            Endpoint::Path => "path",
            Endpoint::Get => "get",
            Endpoint::List => "list",
            Endpoint::Capabilities => "capabilities",
        }
    }
}

/// A parsed, validated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Activate,
    Create {
        name: String,
        options: VolumeOptions,
    },
    Remove {
        name: String,
    },
    Mount {
        name: String,
        id: String,
    },
    Unmount {
        name: String,
        id: String,
    },
    Path {
        name: String,
    },
    Get {
        name: String,
    },
    List,
    Capabilities,
}

impl Request {
    /// The volume the request is about, if any (for logs).
    pub fn volume(&self) -> Option<&str> {
        match self {
            Request::Create { name, .. }
            | Request::Remove { name }
            | Request::Mount { name, .. }
            | Request::Unmount { name, .. }
            | Request::Path { name }
            | Request::Get { name } => Some(name),
            Request::Activate | Request::List | Request::Capabilities => None,
        }
    }
}

/// Why a request body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("malformed json body for {endpoint}: {reason}")]
    Json {
        endpoint: &'static str,
        reason: String,
    },
    #[error(transparent)]
    Invalid(#[from] ValidationError),
}

#[derive(Deserialize)]
struct NameBody {
    #[serde(rename = "Name")]
    name: String,
}

#[derive(Deserialize)]
struct CreateBody {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Opts", default)]
    opts: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct MountBody {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "ID")]
    id: String,
}

/// Parses the body of a call to `endpoint` into a validated [`Request`].
///
/// Bodies of `Activate`, `List` and `Capabilities` carry nothing: an empty
/// body, `null` or any JSON object is accepted; anything else is malformed.
pub fn parse_request(endpoint: Endpoint, body: &[u8]) -> Result<Request, ParseError> {
    let json_err = |e: serde_json::Error| ParseError::Json {
        endpoint: endpoint.label(),
        reason: e.to_string(),
    };
    let empty = || -> Result<(), ParseError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        match serde_json::from_slice::<serde_json::Value>(body).map_err(json_err)? {
            serde_json::Value::Null | serde_json::Value::Object(_) => Ok(()),
            _ => Err(ParseError::Json {
                endpoint: endpoint.label(),
                reason: "expected a json object".into(),
            }),
        }
    };
    let name = || -> Result<String, ParseError> {
        let b: NameBody = serde_json::from_slice(body).map_err(json_err)?;
        volume::validate_name(&b.name)?;
        Ok(b.name)
    };
    let mount = || -> Result<(String, String), ParseError> {
        let b: MountBody = serde_json::from_slice(body).map_err(json_err)?;
        volume::validate_name(&b.name)?;
        volume::validate_id(&b.id)?;
        Ok((b.name, b.id))
    };
    Ok(match endpoint {
        Endpoint::Activate => empty().map(|()| Request::Activate)?,
        Endpoint::List => empty().map(|()| Request::List)?,
        Endpoint::Capabilities => empty().map(|()| Request::Capabilities)?,
        Endpoint::Create => {
            let b: CreateBody = serde_json::from_slice(body).map_err(json_err)?;
            volume::validate_name(&b.name)?;
            let options = VolumeOptions::parse(&b.name, b.opts.as_ref())?;
            Request::Create {
                name: b.name,
                options,
            }
        }
        Endpoint::Remove => Request::Remove { name: name()? },
        Endpoint::Path => Request::Path { name: name()? },
        Endpoint::Get => Request::Get { name: name()? },
        Endpoint::Mount => {
            let (name, id) = mount()?;
            Request::Mount { name, id }
        }
        Endpoint::Unmount => {
            let (name, id) = mount()?;
            Request::Unmount { name, id }
        }
    })
}

/// One volume as `Get` and `List` describe it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeInfo {
    #[serde(rename = "Name")]
    pub name: String,
    /// Empty while the volume is not mounted.
    #[serde(rename = "Mountpoint")]
    pub mountpoint: String,
    /// RFC 3339.
    #[serde(rename = "CreatedAt")]
    pub created_at: String,
    /// Only in `Get`.
    #[serde(rename = "Status", skip_serializing_if = "Option::is_none", default)]
    pub status: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The answer to a successful request.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    Activate,
    Empty,
    Mountpoint(String),
    Volume(VolumeInfo),
    Volumes(Vec<VolumeInfo>),
    Capabilities,
}

impl Response {
    /// The JSON body.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Response::Activate => json!({ "Implements": ["VolumeDriver"] }),
            Response::Empty => json!({ "Err": "" }),
            Response::Mountpoint(m) => json!({ "Mountpoint": m, "Err": "" }),
            Response::Volume(v) => json!({ "Volume": v, "Err": "" }),
            Response::Volumes(v) => json!({ "Volumes": v, "Err": "" }),
            Response::Capabilities => json!({ "Capabilities": { "Scope": "local" }, "Err": "" }),
        }
    }
}

/// The JSON body of a failed request.
pub fn error_json(message: &str) -> serde_json::Value {
    serde_json::json!({ "Err": message })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_round_trip() {
        for e in Endpoint::ALL {
            let path = match e {
                Endpoint::Activate => "/Plugin.Activate".to_string(),
                other => format!("/VolumeDriver.{:?}", other),
            };
            assert_eq!(Endpoint::from_path(&path), Some(e));
        }
        assert_eq!(Endpoint::from_path("/VolumeDriver.Rename"), None);
        assert_eq!(Endpoint::from_path("/volumedriver.create"), None);
    }

    #[test]
    fn create_with_null_opts_is_implicit_creation() {
        let r = parse_request(Endpoint::Create, br#"{"Name":"v1","Opts":null}"#).unwrap();
        assert_eq!(
            r,
            Request::Create {
                name: "v1".into(),
                options: VolumeOptions::default()
            }
        );
        let r = parse_request(Endpoint::Create, br#"{"Name":"v1"}"#).unwrap();
        assert!(matches!(r, Request::Create { .. }));
    }

    #[test]
    fn create_with_options() {
        let r = parse_request(
            Endpoint::Create,
            br#"{"Name":"v1","Opts":{"uid":"5","mode":"700"}}"#,
        )
        .unwrap();
        let Request::Create { options, .. } = r else {
            panic!("not a create: {r:?}")
        };
        assert_eq!((options.uid, options.mode), (Some(5), Some(0o700)));
    }

    #[test]
    fn create_rejects_non_string_option_values() {
        let err =
            parse_request(Endpoint::Create, br#"{"Name":"v1","Opts":{"uid":5}}"#).unwrap_err();
        assert!(
            matches!(
                err,
                ParseError::Json {
                    endpoint: "create",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn mount_needs_name_and_id() {
        let r = parse_request(Endpoint::Mount, br#"{"Name":"v","ID":"abc"}"#).unwrap();
        assert_eq!(
            r,
            Request::Mount {
                name: "v".into(),
                id: "abc".into()
            }
        );
        assert!(matches!(
            parse_request(Endpoint::Mount, br#"{"Name":"v"}"#),
            Err(ParseError::Json { .. })
        ));
        assert!(matches!(
            parse_request(Endpoint::Unmount, br#"{"Name":"v","ID":""}"#),
            Err(ParseError::Invalid(ValidationError::Id(_)))
        ));
    }

    #[test]
    fn malformed_bodies() {
        for body in [&b"{"[..], b"[]", b"\"x\"", b"{\"Name\":1}", b"", b"null"] {
            assert!(
                matches!(
                    parse_request(Endpoint::Get, body),
                    Err(ParseError::Json { .. })
                ),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(matches!(
            parse_request(Endpoint::List, b"[1]"),
            Err(ParseError::Json { .. })
        ));
        assert!(matches!(
            parse_request(Endpoint::List, b"{"),
            Err(ParseError::Json { .. })
        ));
    }

    #[test]
    fn bodiless_endpoints_accept_empty_null_and_objects() {
        for body in [&b""[..], b"null", b"{}", b" \n"] {
            assert_eq!(parse_request(Endpoint::List, body), Ok(Request::List));
            assert_eq!(
                parse_request(Endpoint::Activate, body),
                Ok(Request::Activate)
            );
            assert_eq!(
                parse_request(Endpoint::Capabilities, body),
                Ok(Request::Capabilities)
            );
        }
    }

    #[test]
    fn bad_names_are_refused_everywhere() {
        for e in [
            Endpoint::Remove,
            Endpoint::Get,
            Endpoint::Path,
            Endpoint::Create,
        ] {
            let err = parse_request(e, br#"{"Name":"../etc"}"#).unwrap_err();
            assert_eq!(
                err,
                ParseError::Invalid(ValidationError::Name("../etc".into()))
            );
        }
    }

    /// Random and mutated bodies never panic the parser, and whatever it
    /// accepts carries a valid name.
    #[test]
    fn parser_survives_garbage() {
        let seeds: [&[u8]; 4] = [
            br#"{"Name":"vol1","Opts":{"uid":"1","mode":"0750"}}"#,
            br#"{"Name":"v","ID":"abc"}"#,
            b"{}",
            b"null",
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..20_000 {
            let mut body = seeds[round % seeds.len()].to_vec();
            for _ in 0..(next() % 6) {
                let r = next();
                let pos = (r as usize >> 8) % (body.len() + 1);
                match r % 3 {
                    0 if pos < body.len() => body[pos] = (r >> 32) as u8,
                    1 => body.insert(pos, (r >> 24) as u8),
                    _ if pos < body.len() => {
                        body.remove(pos);
                    }
                    _ => {}
                }
            }
            let endpoint = Endpoint::ALL[(next() % 9) as usize];
            if let Ok(req) = parse_request(endpoint, &body) {
                if let Some(name) = req.volume() {
                    assert_eq!(volume::validate_name(name), Ok(()), "{body:?}");
                }
            }
        }
    }

    #[test]
    fn response_shapes() {
        assert_eq!(
            Response::Capabilities.to_json(),
            serde_json::json!({"Capabilities":{"Scope":"local"},"Err":""})
        );
        assert_eq!(
            Response::Activate.to_json(),
            serde_json::json!({"Implements":["VolumeDriver"]})
        );
        let v = VolumeInfo {
            name: "v".into(),
            mountpoint: String::new(),
            created_at: "2024-01-01T00:00:00Z".into(),
            status: None,
        };
        assert_eq!(
            Response::Volumes(vec![v]).to_json(),
            serde_json::json!({"Volumes":[{"Name":"v","Mountpoint":"","CreatedAt":"2024-01-01T00:00:00Z"}],"Err":""})
        );
        assert_eq!(error_json("boom"), serde_json::json!({"Err":"boom"}));
    }
}
