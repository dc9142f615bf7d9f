//! A model's copy on a GPU: the device, the resident parameters (uploaded on first use), their
//! precision, and which of the two copies is newer. Every rule about keeping the host and the
//! device copies in step is here.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::Real;
use crate::config::RnnConfig;
use crate::error::{Result, RnnError};
use crate::gpu::{GpuContext, GpuModel};
use crate::params::RnnParams;

/// Which copy of the parameters changed since the two last agreed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncState {
    /// Both hold the same values.
    Current,
    /// `params_mut` changed the host's: the device's is refreshed before its next use.
    HostChanged,
    /// Optimizer steps on the device changed its copy: the host's is stale until `sync_params`.
    DeviceChanged,
    /// Both changed: the device's cannot be used (nor rebuilt) until `sync_params` settles it.
    BothChanged,
}

/// The device side of a GPU model.
pub(crate) struct DeviceCopy {
    context: Arc<GpuContext>,
    /// f16 weights and activations for inference (`Rnn::with_f16`).
    f16: bool,
    state: Mutex<DeviceState>,
}

struct DeviceState {
    /// The resident model, made on first use.
    model: Option<Arc<GpuModel>>,
    sync: SyncState,
}

const SYNC_FIRST: &str =
    "the device holds newer parameters from optimizer steps there: call sync_params first";

impl DeviceCopy {
    /// A copy on `context` that uploads the host's parameters on first use.
    pub fn new(context: Arc<GpuContext>, f16: bool) -> Self {
        DeviceCopy {
            context,
            f16,
            state: Mutex::new(DeviceState {
                model: None,
                sync: SyncState::Current,
            }),
        }
    }

    pub fn context(&self) -> &Arc<GpuContext> {
        &self.context
    }

    pub fn is_f16(&self) -> bool {
        self.f16
    }

    pub fn sync_state(&self) -> SyncState {
        self.lock().sync
    }

    fn lock(&self) -> MutexGuard<'_, DeviceState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The resident model, with `params` uploaded first where the host's changed (or where
    /// there is none yet).
    pub fn model<T: Real>(
        &self,
        config: &RnnConfig,
        params: &RnnParams<T>,
    ) -> Result<Arc<GpuModel>> {
        let mut state = self.lock();
        match (state.model.clone(), state.sync) {
            (_, SyncState::BothChanged) => Err(RnnError::Config(
                "the host parameters were changed while the device held newer ones from optimizer steps there (call sync_params first)".into(),
            )),
            (None, SyncState::DeviceChanged) => Err(RnnError::Config(SYNC_FIRST.into())),
            (Some(model), SyncState::HostChanged) => {
                model.update_params(params);
                state.sync = SyncState::Current;
                Ok(model)
            }
            (Some(model), _) => Ok(model),
            (None, _) => {
                let model = Arc::new(GpuModel::new(
                    self.context.clone(),
                    config,
                    params,
                    self.f16,
                )?);
                state.model = Some(model.clone());
                state.sync = SyncState::Current;
                Ok(model)
            }
        }
    }

    /// The host's parameters are about to change (`params_mut`).
    pub fn host_changed(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        state.sync = match state.sync {
            SyncState::Current | SyncState::HostChanged => SyncState::HostChanged,
            SyncState::DeviceChanged | SyncState::BothChanged => SyncState::BothChanged,
        };
    }

    /// An optimizer step on the device changed its copy (it ran on the model `model` returned,
    /// so the host's changes were uploaded before it).
    pub fn device_changed(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        state.sync = SyncState::DeviceChanged;
    }

    /// The device's parameters where steps there made them newer, read back; after this both
    /// copies agree.
    pub fn newer_device_params(&mut self) -> Result<Option<RnnParams<f32>>> {
        let state = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        if !matches!(
            state.sync,
            SyncState::DeviceChanged | SyncState::BothChanged
        ) {
            return Ok(None);
        }
        let model = state
            .model
            .as_ref()
            .ok_or_else(|| RnnError::Config(SYNC_FIRST.into()))?;
        let params = model.read_params()?;
        state.sync = SyncState::Current;
        Ok(Some(params))
    }

    /// An error while the host's parameters are behind the device's: what would rebuild the
    /// device copy from them (moving, cloning into a new copy) must not run then.
    pub fn check_host_current(&self) -> Result<()> {
        match self.sync_state() {
            SyncState::DeviceChanged | SyncState::BothChanged => {
                Err(RnnError::Config(SYNC_FIRST.into()))
            }
            SyncState::Current | SyncState::HostChanged => Ok(()),
        }
    }

    /// A new copy on the same device with the same precision, uploading on first use; one cloned
    /// while the device was ahead refuses to build until the host is synced.
    pub fn fresh(&self) -> Self {
        let copy = DeviceCopy::new(self.context.clone(), self.f16);
        if self.check_host_current().is_err() {
            copy.lock().sync = SyncState::DeviceChanged;
        }
        copy
    }

    /// The same device in another precision, uploading on first use.
    pub fn with_f16(&self, f16: bool) -> Self {
        DeviceCopy::new(self.context.clone(), f16)
    }
}
