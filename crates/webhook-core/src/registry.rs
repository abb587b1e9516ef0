use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::module::{BuildContext, DynModule, Module};
use crate::transform::TransformLanguage;
use crate::validator::{DynValidator, Validator};
use crate::{BoxFuture, BuildError};

/// The destinations and validators a program offers, by config name.
///
/// A plain value built by the program (the server's `registry.rs`, or a test), never a
/// global. Validators run in registration order.
#[derive(Default)]
pub struct Registry {
    modules: BTreeMap<&'static str, Arc<dyn ModuleFactory>>,
    validators: Vec<Arc<dyn ValidatorFactory>>,
    unavailable: BTreeMap<&'static str, String>,
    unsupported_keys: BTreeMap<&'static str, &'static str>,
    transforms: BTreeMap<&'static str, Arc<dyn TransformLanguage>>,
    transforms_unavailable: BTreeMap<&'static str, &'static str>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("modules", &self.module_kinds())
            .field("validators", &self.validator_keys())
            .field("unavailable", &self.unavailable)
            .field("transforms", &self.transform_keys())
            .finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Offer destination `M` under [`Module::KIND`]. A later registration of the same kind
    /// replaces the earlier one.
    pub fn register_module<M: Module>(&mut self) -> &mut Self {
        self.unavailable.remove(M::KIND);
        self.modules
            .insert(M::KIND, Arc::new(ModuleFactoryImpl::<M>(PhantomData)));
        self
    }

    /// Offer destination `M` under [`Module::KIND`] and also under `alias` (the original's
    /// second names: `postgres` for `postgresql`, `mariadb` for `mysql`).
    pub fn register_module_with_alias<M: Module>(&mut self, alias: &'static str) -> &mut Self {
        self.register_module::<M>();
        self.unavailable.remove(alias);
        self.modules
            .insert(alias, Arc::new(ModuleFactoryImpl::<M>(PhantomData)));
        self
    }

    /// Offer validator `V` under [`Validator::KEY`]; it runs after those registered before.
    pub fn register_validator<V: Validator>(&mut self) -> &mut Self {
        self.validators.retain(|v| v.key() != V::KEY);
        self.validators
            .push(Arc::new(ValidatorFactoryImpl::<V>(PhantomData)));
        self
    }

    /// Record that destination `kind` exists but was compiled out; asking for it gives
    /// "module `kind` is not in this build; rebuild with `--features feature`".
    pub fn not_in_build(&mut self, kind: &'static str, feature: &'static str) -> &mut Self {
        self.unavailable_module(
            kind,
            &format!("not in this build; rebuild with `--features {feature}`"),
        )
    }

    /// Record that destination `kind` is known but cannot be used; asking for it gives
    /// "module `kind` is <why>".
    pub fn unavailable_module(&mut self, kind: &'static str, why: &str) -> &mut Self {
        if !self.modules.contains_key(kind) {
            self.unavailable.insert(kind, why.to_owned());
        }
        self
    }

    /// Record a webhook key of the original format that this build does not implement
    /// yet; using it is a config error with `why`, never silently ignored.
    pub fn unsupported_key(&mut self, key: &'static str, why: &'static str) -> &mut Self {
        self.unsupported_keys.insert(key, why);
        self
    }

    /// Offer a transform language under [`TransformLanguage::key`] (`jq`, `js`).
    pub fn register_transform_language(
        &mut self,
        language: Arc<dyn TransformLanguage>,
    ) -> &mut Self {
        self.transforms_unavailable.remove(language.key());
        self.transforms.insert(language.key(), language);
        self
    }

    /// Record that transform language `key` was compiled out; a program in it is a config
    /// error naming `feature`.
    pub fn transform_not_in_build(
        &mut self,
        key: &'static str,
        feature: &'static str,
    ) -> &mut Self {
        if !self.transforms.contains_key(key) {
            self.transforms_unavailable.insert(key, feature);
        }
        self
    }

    /// The transform languages this registry offers, sorted.
    pub fn transform_keys(&self) -> Vec<&'static str> {
        self.transforms.keys().copied().collect()
    }

    /// The language named `key`, or why there is none.
    pub(crate) fn transform_language(
        &self,
        key: &str,
    ) -> Result<&Arc<dyn TransformLanguage>, String> {
        if let Some(language) = self.transforms.get(key) {
            return Ok(language);
        }
        if let Some(feature) = self.transforms_unavailable.get(key) {
            return Err(format!(
                "transform language `{key}` is not in this build; rebuild with `--features {feature}`"
            ));
        }
        Err(format!(
            "unknown transform language `{key}`; this build has: {}",
            self.transform_keys().join(", ")
        ))
    }

    /// The destination kinds this registry offers, sorted.
    pub fn module_kinds(&self) -> Vec<&'static str> {
        self.modules.keys().copied().collect()
    }

    /// The validator keys this registry offers, in the order they run.
    pub fn validator_keys(&self) -> Vec<&'static str> {
        self.validators.iter().map(|v| v.key()).collect()
    }

    pub(crate) fn module(&self, kind: &str) -> Result<&Arc<dyn ModuleFactory>, String> {
        if let Some(factory) = self.modules.get(kind) {
            return Ok(factory);
        }
        if let Some(why) = self.unavailable.get(kind) {
            return Err(format!("module `{kind}` is {why}"));
        }
        Err(format!(
            "unknown module `{kind}`; this build has: {}",
            self.module_kinds().join(", ")
        ))
    }

    pub(crate) fn validators(&self) -> &[Arc<dyn ValidatorFactory>] {
        &self.validators
    }

    pub(crate) fn unsupported(&self, key: &str) -> Option<&'static str> {
        self.unsupported_keys.get(key).copied()
    }
}

/// A module config parsed and checked, waiting to be built (connected).
pub(crate) trait PreparedModule: Send + Sync {
    fn validate(&self, context: &BuildContext) -> Result<(), BuildError>;
    fn build(
        self: Box<Self>,
        context: BuildContext,
    ) -> BoxFuture<'static, Result<Arc<dyn DynModule>, BuildError>>;
}

/// Where a prepare error lies.
#[derive(Debug)]
pub(crate) enum PrepareError {
    ModuleConfig { key: String, message: String },
    Connection { key: String, message: String },
}

pub(crate) trait ModuleFactory: Send + Sync {
    fn connection_types(&self) -> &'static [&'static str];
    fn connection_optional(&self) -> bool;
    fn top_level_keys(&self) -> &'static [&'static str];
    fn prepare(
        &self,
        config: Value,
        connection: Option<Value>,
    ) -> Result<Box<dyn PreparedModule>, PrepareError>;
}

struct ModuleFactoryImpl<M>(PhantomData<fn() -> M>);

struct Prepared<M: Module> {
    config: M::Config,
    connection: Option<M::Connection>,
}

impl<M: Module> PreparedModule for Prepared<M> {
    fn validate(&self, context: &BuildContext) -> Result<(), BuildError> {
        M::validate(&self.config, context)
    }

    fn build(
        self: Box<Self>,
        context: BuildContext,
    ) -> BoxFuture<'static, Result<Arc<dyn DynModule>, BuildError>> {
        Box::pin(async move {
            M::validate(&self.config, &context)?;
            let module = M::build(self.config, self.connection, &context).await?;
            Ok(Arc::new(module) as Arc<dyn DynModule>)
        })
    }
}

impl<M: Module> ModuleFactory for ModuleFactoryImpl<M> {
    fn connection_types(&self) -> &'static [&'static str] {
        M::CONNECTION_TYPES
    }

    fn top_level_keys(&self) -> &'static [&'static str] {
        M::TOP_LEVEL_KEYS
    }

    fn connection_optional(&self) -> bool {
        M::CONNECTION_OPTIONAL
    }

    fn prepare(
        &self,
        config: Value,
        connection: Option<Value>,
    ) -> Result<Box<dyn PreparedModule>, PrepareError> {
        let config = from_value::<M::Config>(config)
            .map_err(|(key, message)| PrepareError::ModuleConfig { key, message })?;
        let connection = match connection {
            Some(value) => Some(
                from_value::<M::Connection>(value)
                    .map_err(|(key, message)| PrepareError::Connection { key, message })?,
            ),
            None => None,
        };
        Ok(Box::new(Prepared::<M> { config, connection }))
    }
}

pub(crate) trait ValidatorFactory: Send + Sync {
    fn key(&self) -> &'static str;
    /// The validator `config` asks for; `None` when it switches the check off.
    fn build(&self, config: Value) -> Result<Option<Arc<dyn DynValidator>>, BuildError>;
}

struct ValidatorFactoryImpl<V>(PhantomData<fn() -> V>);

impl<V: Validator> ValidatorFactory for ValidatorFactoryImpl<V> {
    fn key(&self) -> &'static str {
        V::KEY
    }

    fn build(&self, config: Value) -> Result<Option<Arc<dyn DynValidator>>, BuildError> {
        let config = from_value::<V::Config>(config)
            .map_err(|(key, message)| BuildError { key, message })?;
        if !V::enabled(&config) {
            return Ok(None);
        }
        Ok(Some(Arc::new(V::build(config)?)))
    }
}

/// Deserialize with the path of the failing key: `(path, message)`.
pub(crate) fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let path = if path == "." { String::new() } else { path };
        (path, err.into_inner().to_string())
    })
}
