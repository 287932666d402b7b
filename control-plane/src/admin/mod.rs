//! `AdminService`: the operator API (`meridianctl` is its client).
//!
//! Every change is checked completely before anything is written: first the
//! request, then the inventory, then one store write (a single sled batch or
//! transaction), then the in-memory inventory. A refused request leaves no
//! trace. Admin writes are serialised by one async mutex, so two concurrent
//! adds of the same id cannot both pass the duplicate check.
//!
//! A change is published before the reply is sent, and an added upstream's
//! network is probed at once, so the change reaches data planes well within
//! a second (an added upstream then still has to pass `healthy_after`
//! probes before it takes traffic).

mod convert;

use std::collections::BTreeMap;
use std::sync::Arc;

use meridian_common::proto;
use meridian_common::proto::admin_service_server::AdminService;
use meridian_common::snapshot::Role;
use meridian_common::url::parse_node_url;
use tokio::sync::{Mutex, Notify};
use tonic::{Request, Response, Status};

use crate::distribute::DataPlanes;
use crate::inventory::{Inventory, InventoryError, UpstreamSpec};
use crate::snapshot::Publisher;
use crate::store::Store;
use meridian_common::snapshot::valid_upstream_id;

/// The admin service.
#[derive(Debug)]
pub struct Admin {
    inventory: Arc<Inventory>,
    store: Arc<dyn Store>,
    publisher: Arc<Publisher>,
    dataplanes: Arc<DataPlanes>,
    /// Per network: wakes its prober.
    wakes: BTreeMap<String, Arc<Notify>>,
    writes: Mutex<()>,
}

impl Admin {
    pub fn new(
        inventory: Arc<Inventory>,
        store: Arc<dyn Store>,
        publisher: Arc<Publisher>,
        dataplanes: Arc<DataPlanes>,
        wakes: BTreeMap<String, Arc<Notify>>,
    ) -> Admin {
        Admin {
            inventory,
            store,
            publisher,
            dataplanes,
            wakes,
            writes: Mutex::new(()),
        }
    }

    fn unknown_network(&self, network: &str) -> Status {
        let known = self.inventory.network_ids().join(", ");
        Status::invalid_argument(format!("unknown network {network:?} (known: {known})"))
    }

    fn inventory_error(&self, e: InventoryError) -> Status {
        match e {
            InventoryError::UnknownNetwork(n) => self.unknown_network(&n),
            InventoryError::DuplicateUpstream { .. } => Status::invalid_argument(e.to_string()),
            InventoryError::UnknownUpstream { .. } => Status::not_found(e.to_string()),
        }
    }

    /// The upstream an add request describes, fully validated.
    fn spec(&self, r: &proto::AddUpstreamRequest) -> Result<UpstreamSpec, Status> {
        if !valid_upstream_id(&r.upstream_id) {
            return Err(Status::invalid_argument(format!(
                "upstream id {:?} must be 1-128 printable ASCII characters without spaces",
                r.upstream_id
            )));
        }
        parse_node_url(&r.url).map_err(|e| Status::invalid_argument(e.to_string()))?;
        if r.region.len() > 128 || r.region.chars().any(char::is_control) {
            return Err(Status::invalid_argument(
                "region must be at most 128 printable characters",
            ));
        }
        let mut roles = r
            .roles
            .iter()
            .map(|r| convert::role_from_wire(*r))
            .collect::<Result<Vec<_>, _>>()?;
        if roles.is_empty() {
            roles.extend(Role::DEFAULT);
        }
        roles.sort_unstable();
        roles.dedup();
        Ok(UpstreamSpec {
            id: r.upstream_id.clone(),
            url: r.url.clone(),
            region: r.region.clone(),
            weight: r.weight.max(1),
            roles,
        })
    }
}

#[tonic::async_trait]
impl AdminService for Admin {
    async fn add_upstream(
        &self,
        request: Request<proto::AddUpstreamRequest>,
    ) -> Result<Response<proto::AddUpstreamResponse>, Status> {
        let r = request.into_inner();
        let network = r.network_id.as_str();
        let Some(wake) = self.wakes.get(network) else {
            return Err(self.unknown_network(network));
        };
        let spec = self.spec(&r)?;
        let _write = self.writes.lock().await;
        self.inventory
            .check_add(network, &spec)
            .map_err(|e| self.inventory_error(e))?;
        self.store.add_upstream(network, &spec).map_err(|e| {
            tracing::error!(error = %e, "cannot store an added upstream");
            Status::internal(format!("cannot store the upstream: {e}"))
        })?;
        self.inventory
            .insert(network, spec.clone())
            .map_err(|e| self.inventory_error(e))?;
        tracing::info!(network, upstream = %spec.id, url = %spec.url, "upstream added");
        self.publisher.publish_if_changed();
        wake.notify_one();
        Ok(Response::new(proto::AddUpstreamResponse {}))
    }

    async fn remove_upstream(
        &self,
        request: Request<proto::RemoveUpstreamRequest>,
    ) -> Result<Response<proto::RemoveUpstreamResponse>, Status> {
        let r = request.into_inner();
        let network = r.network_id.as_str();
        let _write = self.writes.lock().await;
        let tombstone = self
            .inventory
            .check_remove(network, &r.upstream_id)
            .map_err(|e| self.inventory_error(e))?;
        self.store
            .remove_upstream(network, &r.upstream_id, tombstone)
            .map_err(|e| {
                tracing::error!(error = %e, "cannot store an upstream removal");
                Status::internal(format!("cannot store the removal: {e}"))
            })?;
        self.inventory
            .remove(network, &r.upstream_id)
            .map_err(|e| self.inventory_error(e))?;
        tracing::info!(network, upstream = %r.upstream_id, "upstream removed");
        self.publisher.publish_if_changed();
        Ok(Response::new(proto::RemoveUpstreamResponse {}))
    }

    async fn list_upstreams(
        &self,
        request: Request<proto::ListUpstreamsRequest>,
    ) -> Result<Response<proto::ListUpstreamsResponse>, Status> {
        let filter = request.into_inner().network_id;
        if !filter.is_empty() && !self.wakes.contains_key(&filter) {
            return Err(self.unknown_network(&filter));
        }
        let upstreams = self.inventory.read(|networks| {
            networks
                .iter()
                .filter(|(id, _)| filter.is_empty() || **id == filter)
                .flat_map(|(id, n)| {
                    n.upstreams.values().map(move |u| proto::UpstreamStatus {
                        network_id: id.clone(),
                        upstream: Some(convert::live_upstream(u)),
                        origin: u.origin.as_str().to_owned(),
                    })
                })
                .collect()
        });
        Ok(Response::new(proto::ListUpstreamsResponse { upstreams }))
    }

    async fn list_data_planes(
        &self,
        _request: Request<proto::ListDataPlanesRequest>,
    ) -> Result<Response<proto::ListDataPlanesResponse>, Status> {
        Ok(Response::new(proto::ListDataPlanesResponse {
            dataplanes: self.dataplanes.list(),
        }))
    }

    async fn get_snapshot(
        &self,
        _request: Request<proto::GetSnapshotRequest>,
    ) -> Result<Response<proto::GetSnapshotResponse>, Status> {
        let published = self
            .publisher
            .current()
            .ok_or_else(|| Status::unavailable("no snapshot published yet"))?;
        Ok(Response::new(proto::GetSnapshotResponse {
            snapshot: Some(published.snapshot.clone()),
        }))
    }
}
