"""The environment variables the services read, introspected from their pydantic-settings classes.

Every ``BaseSettings`` subclass defined in a deployed package (``sutazai_runtime`` and the six services) in
a module whose name has ``config`` or ``settings`` in it (the convention: ``config.py``; importing every
module would take seconds) counts, except bases that other found classes extend (``ServiceSettings`` has no
prefix of its own). The
names come from pydantic-settings' own environment source, so prefixes, aliases and ``AliasChoices``
resolve exactly as they do when a service starts.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import dataclass

from pydantic_settings import BaseSettings, EnvSettingsSource

PACKAGES = ("sutazai_runtime", "sutazai_gateway", "sutazai_agents", "sutazai_tasks", "sutazai_mesh",
            "sutazai_chat", "sutazai_memory")


@dataclass(frozen=True)
class Setting:
    owner: str  # module.Class
    field: str
    names: tuple[str, ...]  # any of them sets the field; the first is the one to write
    required: bool

    @property
    def name(self) -> str:
        return self.names[0]


def settings_classes() -> list[type[BaseSettings]]:
    found: dict[str, type[BaseSettings]] = {}
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        modules = [package] + [importlib.import_module(m.name)
                               for m in pkgutil.walk_packages(package.__path__, package_name + ".")
                               if any(word in m.name.rsplit(".", 1)[-1] for word in ("config", "settings"))]
        for module in modules:
            for _, cls in inspect.getmembers(module, inspect.isclass):
                if issubclass(cls, BaseSettings) and cls is not BaseSettings and cls.__module__ == module.__name__:
                    found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    bases = {base for cls in found.values() for base in cls.__mro__[1:]}
    return [cls for cls in found.values() if cls not in bases]


def _names(cls: type[BaseSettings], source: EnvSettingsSource, field_name: str) -> tuple[str, ...]:
    field = cls.model_fields[field_name]
    infos = source._extract_field_info(field, field_name)  # the source's own name resolution
    names = [env_name for _, env_name, _ in infos]
    if field.validation_alias is not None or field.alias is not None:
        # populate_by_name may add the prefixed field name; the alias is the documented name
        prefixed = (cls.model_config.get("env_prefix", "") + field_name).lower()
        names = [n for n in names if n.lower() != prefixed] or names
    return tuple(dict.fromkeys(n.upper() for n in names))


def service_settings() -> list[Setting]:
    result = []
    for cls in settings_classes():
        source = EnvSettingsSource(cls)
        for field_name, field in cls.model_fields.items():
            if isinstance(field.annotation, type) and issubclass(field.annotation, BaseSettings):
                continue  # a nested settings class reads its own names (found on its own above)
            result.append(Setting(f"{cls.__module__}.{cls.__qualname__}", field_name,
                                  _names(cls, source, field_name), field.is_required()))
    return result


if __name__ == "__main__":  # python -m deploy.tests.settings_names: the names, one a line
    import sys

    for s in service_settings():
        sys.stdout.write(f"{s.owner:40} {s.field:28} {'|'.join(s.names)}{'  (required)' if s.required else ''}\n")


def service_of(setting: Setting) -> str | None:
    """The service whose package defines the setting; None for ``sutazai_runtime`` (every service)."""
    package = setting.owner.split(".", 1)[0].removeprefix("sutazai_")
    return None if package == "runtime" else package
