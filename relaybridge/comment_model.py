"""Which model ``RELAYBRIDGE_COMMENT_MODEL`` names, and what is wrong when it names none.

The setting has no default: a project that leaves it out, or names an app that is not
installed, gets relaybridge's own check (``relaybridge.E003``) with the remedy, and
nothing else. For that, :class:`~relaybridge.models.AgentRun`'s foreign keys point at
:data:`PLACEHOLDER` while the setting names nothing usable (a dangling reference would
add six errors of Django's own about an app that has nothing to do with the host), and
the receivers are connected only to a model that exists. The check stops ``migrate``
and ``runserver``; the migration refuses to run without the setting.
"""

from __future__ import annotations

from typing import Final

from django.apps import apps
from django.utils.translation import gettext as _

from .conf import relay_settings

#: What AgentRun's foreign keys point at until the setting names an installed app:
#: AgentRun itself, which always exists and clashes with nothing.
PLACEHOLDER: Final = "self"

REMEDY: Final = (
    'Set RELAYBRIDGE_COMMENT_MODEL = "yourapp.Comment" (the app label and model name of '
    "your comment model) in your settings before the first migrate."
)


def comment_model_problem() -> str | None:
    """Why ``RELAYBRIDGE_COMMENT_MODEL`` names no usable model, or None when it does.

    While models are still being imported only the app label can be judged (the
    model may be defined later); once they are all loaded, the model is looked up.
    """
    label = relay_settings.COMMENT_MODEL
    if label is None:
        return _("RELAYBRIDGE_COMMENT_MODEL is not set.")
    app_label, dot, model_name = label.partition(".")
    if not dot or not app_label or not model_name or "." in model_name:
        return _("RELAYBRIDGE_COMMENT_MODEL is %(label)r, not 'app_label.ModelName'.") % {
            "label": label
        }
    if app_label not in apps.app_configs:
        return _(
            "RELAYBRIDGE_COMMENT_MODEL is %(label)r, but no installed app has the label %(app)r."
        ) % {"label": label, "app": app_label}
    if apps.models_ready:
        try:
            apps.get_model(app_label, model_name)
        except LookupError:
            return _(
                "RELAYBRIDGE_COMMENT_MODEL is %(label)r, but app %(app)r has no model %(model)r."
            ) % {"label": label, "app": app_label, "model": model_name}
    return None


def foreign_key_target() -> str:
    """What AgentRun's comment foreign keys point at (read while models are imported)."""
    label = relay_settings.COMMENT_MODEL
    if label is None or comment_model_problem() is not None:
        return PLACEHOLDER
    return label
