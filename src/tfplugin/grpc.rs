//! The gRPC services of protocols 6 and 5: translations between the generated message
//! types and [`Server`]'s plain functions. The two protocols differ only in a few RPC
//! names and fields, so both services are generated from one template.

use std::sync::Arc;

use tracing::Instrument;

use super::diagnostics::{AttributePath, Diagnostics, Severity};
use super::resource::ActionEvent;
use super::schema::{Attribute, Block, Nesting, Schema};
use super::server::{Dv, ListEvent, Server};
use super::value::PathStep;

/// gRPC message size limits, as Go providers have (terraform-plugin-go).
pub const MAX_MESSAGE_SIZE: usize = 256 << 20;

/// A span per RPC, named the way terraform-plugin-go names its log fields. It is at
/// error level so that its fields accompany events at every level that is logged.
fn rpc_span(rpc: &'static str, type_name: &str) -> tracing::Span {
    tracing::error_span!("rpc", tf_rpc = rpc, tf_resource_type = type_name)
}

/// The error diagnostic of an RPC this provider has no use for.
fn unsupported_detail(rpc: &str) -> (String, String) {
    (
        format!("{rpc} is not supported"),
        format!(
            "terraform-provider-immutable does not implement the {rpc} RPC: it declares no \
             object that would need it."
        ),
    )
}

macro_rules! provider_service {
    (
        protocol: $m:ident,
        get_schema: $get_schema:ident,
        validate_resource: $validate_resource:ident,
        validate_data_source: $validate_data_source:ident,
        configure: $configure:ident,
        stop: $stop:ident,
        items: { $($items:tt)* }
        extra: { $($extra:tt)* }
    ) => {
        pub mod $m {
            use super::*;
            use tfplugin_proto::$m as pb;
            use tonic::{Request, Response, Status};
            use tokio_stream::wrappers::UnboundedReceiverStream;

            /// The provider's gRPC service for this protocol version.
            pub struct Service(pub Arc<Server>);

            pub fn server(core: Arc<Server>) -> pb::provider_server::ProviderServer<Service> {
                pb::provider_server::ProviderServer::new(Service(core))
                    .max_decoding_message_size(MAX_MESSAGE_SIZE)
                    .max_encoding_message_size(MAX_MESSAGE_SIZE)
            }

            fn diagnostics(diags: Diagnostics) -> Vec<pb::Diagnostic> {
                diags
                    .0
                    .into_iter()
                    .map(|d| pb::Diagnostic {
                        severity: match d.severity {
                            Severity::Error => pb::diagnostic::Severity::Error,
                            Severity::Warning => pb::diagnostic::Severity::Warning,
                        } as i32,
                        summary: d.summary,
                        detail: d.detail,
                        attribute: d.attribute.as_ref().map(path),
                    })
                    .collect()
            }

            fn path(p: &AttributePath) -> pb::AttributePath {
                use pb::attribute_path::step::Selector;
                let steps = p
                    .0
                    .iter()
                    .map(|s| pb::attribute_path::Step {
                        selector: Some(match s {
                            PathStep::Attr(a) => Selector::AttributeName(a.clone()),
                            PathStep::Key(k) => Selector::ElementKeyString(k.clone()),
                            PathStep::Index(i) => Selector::ElementKeyInt(*i),
                        }),
                    })
                    .collect();
                pb::AttributePath { steps }
            }

            fn unsupported(rpc: &str) -> Vec<pb::Diagnostic> {
                let (summary, detail) = unsupported_detail(rpc);
                let mut diags = Diagnostics::default();
                diags.error(summary, detail);
                diagnostics(diags)
            }

            fn dv_in(v: Option<pb::DynamicValue>) -> Option<Dv> {
                v.map(|v| Dv { msgpack: v.msgpack, json: v.json })
            }

            fn dv_out(v: Option<Dv>) -> Option<pb::DynamicValue> {
                v.map(|v| pb::DynamicValue { msgpack: v.msgpack, json: v.json })
            }

            fn identity_data(v: Option<Dv>) -> Option<pb::ResourceIdentityData> {
                v.map(|v| pb::ResourceIdentityData { identity_data: dv_out(Some(v)) })
            }

            fn schema(s: &Schema) -> pb::Schema {
                pb::Schema { version: s.version, block: Some(block(&s.block)) }
            }

            fn block(b: &Block) -> pb::schema::Block {
                let attributes = b.attributes.iter().map(attribute).collect();
                let block_types = b
                    .blocks
                    .iter()
                    .map(|n| pb::schema::NestedBlock {
                        type_name: n.name.clone(),
                        block: Some(block(&n.block)),
                        nesting: match n.nesting {
                            Nesting::Single => pb::schema::nested_block::NestingMode::Single,
                            Nesting::List => pb::schema::nested_block::NestingMode::List,
                        } as i32,
                        // Terraform requires both to be 0 for single blocks.
                        ..Default::default()
                    })
                    .collect();
                pb::schema::Block {
                    attributes,
                    block_types,
                    description: b.description.clone(),
                    description_kind: pb::StringKind::Markdown as i32,
                    ..Default::default()
                }
            }

            fn attribute(a: &Attribute) -> pb::schema::Attribute {
                let mut out = pb::schema::Attribute {
                    name: a.name.clone(),
                    r#type: a.ty.to_json().to_string().into_bytes(),
                    description: a.description.clone(),
                    description_kind: pb::StringKind::Markdown as i32,
                    required: a.required,
                    optional: a.optional,
                    computed: a.computed,
                    sensitive: a.sensitive,
                    write_only: a.write_only,
                    ..Default::default()
                };
                nested_type(a, &mut out);
                out
            }

            $($items)*

            fn capabilities() -> Option<pb::ServerCapabilities> {
                Some(pb::ServerCapabilities {
                    plan_destroy: true,
                    get_provider_schema_optional: true,
                    generate_resource_config: true,
                    ..Default::default()
                })
            }

            fn ok<T>(t: T) -> Result<Response<T>, Status> {
                Ok(Response::new(t))
            }

            #[tonic::async_trait]
            impl pb::provider_server::Provider for Service {
                async fn get_metadata(&self, _: Request<pb::get_metadata::Request>) -> Result<Response<pb::get_metadata::Response>, Status> {
                    use pb::get_metadata::{ActionMetadata, DataSourceMetadata, EphemeralMetadata, ListResourceMetadata, ResourceMetadata};
                    ok(pb::get_metadata::Response {
                        server_capabilities: capabilities(),
                        resources: self.0.resource_schemas().map(|(n, _)| ResourceMetadata { type_name: n.into() }).collect(),
                        data_sources: self.0.data_source_schemas().map(|(n, _)| DataSourceMetadata { type_name: n.into() }).collect(),
                        list_resources: self.0.list_resource_schemas().map(|(n, _)| ListResourceMetadata { type_name: n.into() }).collect(),
                        actions: self.0.action_schemas().map(|(n, _)| ActionMetadata { type_name: n.into() }).collect(),
                        ephemeral_resources: self.0.ephemeral_schemas().map(|(n, _)| EphemeralMetadata { type_name: n.into() }).collect(),
                        ..Default::default()
                    })
                }

                async fn $get_schema(&self, _: Request<pb::get_provider_schema::Request>) -> Result<Response<pb::get_provider_schema::Response>, Status> {
                    ok(pb::get_provider_schema::Response {
                        provider: Some(schema(self.0.provider_schema())),
                        resource_schemas: self.0.resource_schemas().map(|(n, s)| (n.into(), schema(s))).collect(),
                        data_source_schemas: self.0.data_source_schemas().map(|(n, s)| (n.into(), schema(s))).collect(),
                        list_resource_schemas: self.0.list_resource_schemas().map(|(n, s)| (n.into(), schema(s))).collect(),
                        action_schemas: self.0.action_schemas().map(|(n, s)| (n.into(), pb::ActionSchema { schema: Some(schema(s)) })).collect(),
                        ephemeral_resource_schemas: self.0.ephemeral_schemas().map(|(n, s)| (n.into(), schema(s))).collect(),
                        server_capabilities: capabilities(),
                        ..Default::default()
                    })
                }

                async fn $validate_resource(&self, r: Request<pb::$validate_resource::Request>) -> Result<Response<pb::$validate_resource::Response>, Status> {
                    let r = r.into_inner();
                    let _span = rpc_span("ValidateResourceConfig", &r.type_name).entered();
                    let write_only = r.client_capabilities.is_some_and(|c| c.write_only_attributes_allowed);
                    let diags = self.0.validate_resource_config(&r.type_name, dv_in(r.config), write_only);
                    ok(pb::$validate_resource::Response { diagnostics: diagnostics(diags) })
                }

                async fn $validate_data_source(&self, r: Request<pb::$validate_data_source::Request>) -> Result<Response<pb::$validate_data_source::Response>, Status> {
                    let r = r.into_inner();
                    let _span = rpc_span("ValidateDataResourceConfig", &r.type_name).entered();
                    let diags = self.0.validate_data_resource_config(&r.type_name, dv_in(r.config));
                    ok(pb::$validate_data_source::Response { diagnostics: diagnostics(diags) })
                }

                async fn upgrade_resource_state(&self, r: Request<pb::upgrade_resource_state::Request>) -> Result<Response<pb::upgrade_resource_state::Response>, Status> {
                    let r = r.into_inner();
                    let _span = rpc_span("UpgradeResourceState", &r.type_name).entered();
                    let raw = r.raw_state.unwrap_or_default();
                    let (state, diags) = self.0.upgrade_resource_state(&r.type_name, r.version, &raw.json);
                    ok(pb::upgrade_resource_state::Response { upgraded_state: dv_out(state), diagnostics: diagnostics(diags) })
                }

                async fn get_resource_identity_schemas(&self, _: Request<pb::get_resource_identity_schemas::Request>) -> Result<Response<pb::get_resource_identity_schemas::Response>, Status> {
                    let identity_schemas = self.0.identity_schemas().map(|(name, identity)| {
                        let identity_attributes = identity.attributes.iter().map(|(attr, ty)| pb::resource_identity_schema::IdentityAttribute {
                            name: attr.to_string(),
                            r#type: ty.to_json().to_string().into_bytes(),
                            required_for_import: true,
                            ..Default::default()
                        }).collect();
                        (name.to_string(), pb::ResourceIdentitySchema { version: 0, identity_attributes })
                    }).collect();
                    ok(pb::get_resource_identity_schemas::Response { identity_schemas, ..Default::default() })
                }

                async fn upgrade_resource_identity(&self, r: Request<pb::upgrade_resource_identity::Request>) -> Result<Response<pb::upgrade_resource_identity::Response>, Status> {
                    let r = r.into_inner();
                    let raw = r.raw_identity.unwrap_or_default();
                    let (identity, diags) = self.0.upgrade_identity(&r.type_name, &raw.json);
                    ok(pb::upgrade_resource_identity::Response { upgraded_identity: identity_data(identity), diagnostics: diagnostics(diags) })
                }

                async fn $configure(&self, r: Request<pb::$configure::Request>) -> Result<Response<pb::$configure::Response>, Status> {
                    let r = r.into_inner();
                    let span = rpc_span("ConfigureProvider", "");
                    let diags = self.0.configure_provider(dv_in(r.config)).instrument(span).await;
                    ok(pb::$configure::Response { diagnostics: diagnostics(diags) })
                }

                async fn read_resource(&self, r: Request<pb::read_resource::Request>) -> Result<Response<pb::read_resource::Response>, Status> {
                    let r = r.into_inner();
                    let span = rpc_span("ReadResource", &r.type_name);
                    let (state, private, diags) = self.0.read_resource(&r.type_name, dv_in(r.current_state), r.private).instrument(span).await;
                    let new_identity = identity_data(self.0.identity_of(&r.type_name, state.as_ref()));
                    ok(pb::read_resource::Response { new_state: dv_out(state), private, diagnostics: diagnostics(diags), new_identity, ..Default::default() })
                }

                async fn plan_resource_change(&self, r: Request<pb::plan_resource_change::Request>) -> Result<Response<pb::plan_resource_change::Response>, Status> {
                    let r = r.into_inner();
                    let span = rpc_span("PlanResourceChange", &r.type_name);
                    let plan = self.0.plan_resource_change(
                        &r.type_name, dv_in(r.prior_state), dv_in(r.proposed_new_state), dv_in(r.config), r.prior_private,
                    ).instrument(span).await;
                    let planned_identity = identity_data(self.0.identity_of(&r.type_name, plan.planned.as_ref()));
                    ok(pb::plan_resource_change::Response {
                        planned_identity,
                        planned_state: dv_out(plan.planned),
                        requires_replace: plan.requires_replace.iter().map(path).collect(),
                        planned_private: plan.private,
                        diagnostics: diagnostics(plan.diags),
                        ..Default::default()
                    })
                }

                async fn apply_resource_change(&self, r: Request<pb::apply_resource_change::Request>) -> Result<Response<pb::apply_resource_change::Response>, Status> {
                    let r = r.into_inner();
                    let span = rpc_span("ApplyResourceChange", &r.type_name);
                    let (state, private, diags) = self.0.apply_resource_change(
                        &r.type_name, dv_in(r.prior_state), dv_in(r.planned_state), dv_in(r.config), r.planned_private,
                    ).instrument(span).await;
                    let new_identity = identity_data(self.0.identity_of(&r.type_name, state.as_ref()));
                    ok(pb::apply_resource_change::Response { new_state: dv_out(state), private, diagnostics: diagnostics(diags), new_identity, ..Default::default() })
                }

                async fn import_resource_state(&self, r: Request<pb::import_resource_state::Request>) -> Result<Response<pb::import_resource_state::Response>, Status> {
                    let r = r.into_inner();
                    let span = rpc_span("ImportResourceState", &r.type_name);
                    // `import { identity = { ... } }` sends an identity and no ID.
                    let id = match (r.id.is_empty(), r.identity) {
                        (true, Some(identity)) => match self.0.import_id(&r.type_name, dv_in(identity.identity_data)) {
                            Ok(id) => id,
                            Err(diags) => return ok(pb::import_resource_state::Response { diagnostics: diagnostics(diags), ..Default::default() }),
                        },
                        _ => r.id,
                    };
                    let (state, diags) = self.0.import_resource_state(&r.type_name, &id).instrument(span).await;
                    let imported_resources = state
                        .map(|state| pb::import_resource_state::ImportedResource {
                            type_name: r.type_name.clone(),
                            identity: identity_data(self.0.identity_of(&r.type_name, Some(&state))),
                            state: dv_out(Some(state)),
                            ..Default::default()
                        })
                        .into_iter()
                        .collect();
                    ok(pb::import_resource_state::Response { imported_resources, diagnostics: diagnostics(diags), ..Default::default() })
                }

                async fn move_resource_state(&self, _: Request<pb::move_resource_state::Request>) -> Result<Response<pb::move_resource_state::Response>, Status> {
                    ok(pb::move_resource_state::Response { diagnostics: unsupported("MoveResourceState"), ..Default::default() })
                }

                async fn read_data_source(&self, r: Request<pb::read_data_source::Request>) -> Result<Response<pb::read_data_source::Response>, Status> {
                    let r = r.into_inner();
                    let span = rpc_span("ReadDataSource", &r.type_name);
                    let (state, diags) = self.0.read_data_source(&r.type_name, dv_in(r.config)).instrument(span).await;
                    ok(pb::read_data_source::Response { state: dv_out(state), diagnostics: diagnostics(diags), ..Default::default() })
                }

                async fn generate_resource_config(&self, r: Request<pb::generate_resource_config::Request>) -> Result<Response<pb::generate_resource_config::Response>, Status> {
                    let r = r.into_inner();
                    let _span = rpc_span("GenerateResourceConfig", &r.type_name).entered();
                    let (config, diags) = self.0.generate_resource_config(&r.type_name, dv_in(r.state));
                    ok(pb::generate_resource_config::Response { config: dv_out(config), diagnostics: diagnostics(diags) })
                }

                async fn validate_ephemeral_resource_config(&self, r: Request<pb::validate_ephemeral_resource_config::Request>) -> Result<Response<pb::validate_ephemeral_resource_config::Response>, Status> {
                    let r = r.into_inner();
                    let _span = rpc_span("ValidateEphemeralResourceConfig", &r.type_name).entered();
                    let diags = self.0.validate_ephemeral_config(&r.type_name, dv_in(r.config));
                    ok(pb::validate_ephemeral_resource_config::Response { diagnostics: diagnostics(diags) })
                }

                async fn open_ephemeral_resource(&self, r: Request<pb::open_ephemeral_resource::Request>) -> Result<Response<pb::open_ephemeral_resource::Response>, Status> {
                    let r = r.into_inner();
                    let span = rpc_span("OpenEphemeralResource", &r.type_name);
                    let open = self.0.open_ephemeral(&r.type_name, dv_in(r.config)).instrument(span).await;
                    ok(pb::open_ephemeral_resource::Response {
                        diagnostics: diagnostics(open.diags),
                        renew_at: open.renew_at.map(Into::into),
                        result: dv_out(open.result),
                        private: Some(open.private),
                        deferred: None,
                    })
                }

                async fn renew_ephemeral_resource(&self, r: Request<pb::renew_ephemeral_resource::Request>) -> Result<Response<pb::renew_ephemeral_resource::Response>, Status> {
                    let r = r.into_inner();
                    let span = rpc_span("RenewEphemeralResource", &r.type_name);
                    let private = r.private.unwrap_or_default();
                    let (renew_at, diags) = self.0.renew_ephemeral(&r.type_name, &private).instrument(span).await;
                    ok(pb::renew_ephemeral_resource::Response { diagnostics: diagnostics(diags), renew_at: renew_at.map(Into::into), private: Some(private) })
                }

                async fn close_ephemeral_resource(&self, r: Request<pb::close_ephemeral_resource::Request>) -> Result<Response<pb::close_ephemeral_resource::Response>, Status> {
                    let r = r.into_inner();
                    let span = rpc_span("CloseEphemeralResource", &r.type_name);
                    let diags = self.0.close_ephemeral(&r.type_name, &r.private.unwrap_or_default()).instrument(span).await;
                    ok(pb::close_ephemeral_resource::Response { diagnostics: diagnostics(diags) })
                }

                type ListResourceStream = futures_util::stream::Map<
                    UnboundedReceiverStream<ListEvent>,
                    fn(ListEvent) -> Result<pb::list_resource::Event, Status>,
                >;

                /// Each object streams as it is found; when Terraform stops listening, the
                /// search ends at its next find.
                async fn list_resource(&self, r: Request<pb::list_resource::Request>) -> Result<Response<Self::ListResourceStream>, Status> {
                    use futures_util::StreamExt;
                    fn event(event: ListEvent) -> Result<pb::list_resource::Event, Status> {
                        Ok(match event {
                            ListEvent::Found(f) => pb::list_resource::Event {
                                identity: identity_data(Some(f.identity)),
                                display_name: f.display_name,
                                resource_object: dv_out(f.state),
                                diagnostic: Vec::new(),
                            },
                            ListEvent::Diagnostics(diags) => pb::list_resource::Event { diagnostic: diagnostics(diags), ..Default::default() },
                        })
                    }
                    let r = r.into_inner();
                    let span = rpc_span("ListResource", &r.type_name);
                    let events = self.0.list_resource(&r.type_name, dv_in(r.config), r.include_resource_object, r.limit, span);
                    ok(UnboundedReceiverStream::new(events).map(event as fn(_) -> _))
                }

                async fn validate_list_resource_config(&self, r: Request<pb::validate_list_resource_config::Request>) -> Result<Response<pb::validate_list_resource_config::Response>, Status> {
                    let r = r.into_inner();
                    let _span = rpc_span("ValidateListResourceConfig", &r.type_name).entered();
                    let diags = self.0.validate_list_resource_config(&r.type_name, dv_in(r.config));
                    ok(pb::validate_list_resource_config::Response { diagnostics: diagnostics(diags) })
                }

                async fn get_functions(&self, _: Request<pb::get_functions::Request>) -> Result<Response<pb::get_functions::Response>, Status> {
                    // The provider declares no functions; an empty answer is the right one.
                    ok(Default::default())
                }

                async fn call_function(&self, r: Request<pb::call_function::Request>) -> Result<Response<pb::call_function::Response>, Status> {
                    let text = unsupported_detail(&format!("function {:?}", r.into_inner().name)).1;
                    ok(pb::call_function::Response { error: Some(pb::FunctionError { text, function_argument: None }), ..Default::default() })
                }

                async fn plan_action(&self, r: Request<pb::plan_action::Request>) -> Result<Response<pb::plan_action::Response>, Status> {
                    let r = r.into_inner();
                    let _span = rpc_span("PlanAction", &r.action_type).entered();
                    let diags = self.0.validate_action_config(&r.action_type, dv_in(r.config));
                    ok(pb::plan_action::Response { diagnostics: diagnostics(diags), ..Default::default() })
                }

                type InvokeActionStream = futures_util::stream::Map<
                    UnboundedReceiverStream<ActionEvent>,
                    fn(ActionEvent) -> Result<pb::invoke_action::Event, Status>,
                >;

                /// The action runs in its own task to its end, whether or not Terraform is
                /// still listening (interrupted); its events stream as they come.
                async fn invoke_action(&self, r: Request<pb::invoke_action::Request>) -> Result<Response<Self::InvokeActionStream>, Status> {
                    use futures_util::StreamExt;
                    use pb::invoke_action::event::{Completed, Progress, Type};
                    fn event(event: ActionEvent) -> Result<pb::invoke_action::Event, Status> {
                        let r#type = match event {
                            ActionEvent::Progress(message) => Type::Progress(Progress { message }),
                            ActionEvent::Completed(diags) => Type::Completed(Completed { diagnostics: diagnostics(diags) }),
                        };
                        Ok(pb::invoke_action::Event { r#type: Some(r#type) })
                    }
                    let r = r.into_inner();
                    let span = rpc_span("InvokeAction", &r.action_type);
                    let events = self.0.invoke_action(&r.action_type, dv_in(r.config), span);
                    ok(UnboundedReceiverStream::new(events).map(event as fn(_) -> _))
                }

                async fn validate_action_config(&self, r: Request<pb::validate_action_config::Request>) -> Result<Response<pb::validate_action_config::Response>, Status> {
                    let r = r.into_inner();
                    let _span = rpc_span("ValidateActionConfig", &r.type_name).entered();
                    let diags = self.0.validate_action_config(&r.type_name, dv_in(r.config));
                    ok(pb::validate_action_config::Response { diagnostics: diagnostics(diags) })
                }

                async fn $stop(&self, _: Request<pb::$stop::Request>) -> Result<Response<pb::$stop::Response>, Status> {
                    self.0.stop();
                    ok(pb::$stop::Response { error: String::new() })
                }

                $($extra)*
            }
        }
    };
}

provider_service! {
    protocol: tfplugin6,
    get_schema: get_provider_schema,
    validate_resource: validate_resource_config,
    validate_data_source: validate_data_resource_config,
    configure: configure_provider,
    stop: stop_provider,
    items: {
        /// A list of objects becomes a nested attribute, whose optional fields may be
        /// left out in configuration.
        fn nested_type(a: &Attribute, out: &mut pb::schema::Attribute) {
            if let Some(attributes) = &a.nested {
                out.r#type = Vec::new();
                out.nested_type = Some(pb::schema::Object {
                    attributes: attributes.iter().map(attribute).collect(),
                    nesting: pb::schema::object::NestingMode::List as i32,
                    ..Default::default()
                });
            }
        }
    }
    extra: {
        async fn validate_provider_config(&self, r: Request<pb::validate_provider_config::Request>) -> Result<Response<pb::validate_provider_config::Response>, Status> {
            let diags = self.0.validate_provider_config(dv_in(r.into_inner().config));
            ok(pb::validate_provider_config::Response { diagnostics: diagnostics(diags) })
        }

        async fn validate_state_store_config(&self, _: Request<pb::validate_state_store::Request>) -> Result<Response<pb::validate_state_store::Response>, Status> {
            ok(pb::validate_state_store::Response { diagnostics: unsupported("ValidateStateStoreConfig") })
        }

        async fn configure_state_store(&self, _: Request<pb::configure_state_store::Request>) -> Result<Response<pb::configure_state_store::Response>, Status> {
            ok(pb::configure_state_store::Response { diagnostics: unsupported("ConfigureStateStore"), ..Default::default() })
        }

        type ReadStateBytesStream = tokio_stream::Once<Result<pb::read_state_bytes::Response, Status>>;

        async fn read_state_bytes(&self, _: Request<pb::read_state_bytes::Request>) -> Result<Response<Self::ReadStateBytesStream>, Status> {
            ok(tokio_stream::once(Ok(pb::read_state_bytes::Response { diagnostics: unsupported("ReadStateBytes"), ..Default::default() })))
        }

        async fn write_state_bytes(&self, _: Request<tonic::Streaming<pb::write_state_bytes::RequestChunk>>) -> Result<Response<pb::write_state_bytes::Response>, Status> {
            ok(pb::write_state_bytes::Response { diagnostics: unsupported("WriteStateBytes") })
        }

        async fn lock_state(&self, _: Request<pb::lock_state::Request>) -> Result<Response<pb::lock_state::Response>, Status> {
            ok(pb::lock_state::Response { diagnostics: unsupported("LockState"), ..Default::default() })
        }

        async fn unlock_state(&self, _: Request<pb::unlock_state::Request>) -> Result<Response<pb::unlock_state::Response>, Status> {
            ok(pb::unlock_state::Response { diagnostics: unsupported("UnlockState") })
        }

        async fn get_states(&self, _: Request<pb::get_states::Request>) -> Result<Response<pb::get_states::Response>, Status> {
            ok(pb::get_states::Response { diagnostics: unsupported("GetStates"), ..Default::default() })
        }

        async fn delete_state(&self, _: Request<pb::delete_state::Request>) -> Result<Response<pb::delete_state::Response>, Status> {
            ok(pb::delete_state::Response { diagnostics: unsupported("DeleteState") })
        }
    }
}

provider_service! {
    protocol: tfplugin5,
    get_schema: get_schema,
    validate_resource: validate_resource_type_config,
    validate_data_source: validate_data_source_config,
    configure: configure,
    stop: stop,
    items: {
        /// Protocol 5 has no nested attributes: a list of objects keeps its plain type.
        fn nested_type(_: &Attribute, _: &mut pb::schema::Attribute) {}
    }
    extra: {
        /// Protocol 5 lets the provider rewrite its configuration; this one never does.
        async fn prepare_provider_config(&self, r: Request<pb::prepare_provider_config::Request>) -> Result<Response<pb::prepare_provider_config::Response>, Status> {
            let config = r.into_inner().config;
            let diags = self.0.validate_provider_config(dv_in(config.clone()));
            ok(pb::prepare_provider_config::Response { prepared_config: config, diagnostics: diagnostics(diags) })
        }
    }
}
