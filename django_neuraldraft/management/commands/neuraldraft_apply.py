"""``manage.py neuraldraft_apply FILE [--dry-run] [--yes] [--json]``: images as code, from TOML."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from ... import manifest
from ...exceptions import BrokerUnavailableError, CreditBudgetExceededError
from ...manifest import GENERATE, UNCHANGED, UPDATE, ManifestError, Plan, Problem
from ...terminal import printable
from ..base import EXIT_INTERRUPTED, dump_json

#: Problems of a bad file printed; a file that is not a manifest at all has thousands.
PROBLEMS_SHOWN = 20


class Command(BaseCommand):
    help = _(
        "Create and update the image keys a TOML file lists, and generate those that have no "
        "image or whose prompt, style or aspect ratio changed. Shows the plan and its credit "
        "cost first; asks before spending unless --yes."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", metavar="FILE", help=_("the TOML file, e.g. images.toml"))
        parser.add_argument(
            "--dry-run", action="store_true", help=_("print the plan; change nothing")
        )
        parser.add_argument("--yes", action="store_true", help=_("spend credits without asking"))
        parser.add_argument("--json", action="store_true", help=_("print the plan as JSON"))

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["file"])
        try:
            entries = manifest.load(manifest.read(path))
        except ManifestError as err:
            raise CommandError(describe_problems(path, err.problems)) from None
        plan = manifest.plan(entries)
        applied = False
        if not options["json"]:
            self.print_plan(plan)
        if not options["dry_run"] and plan.changes_anything:
            if plan.credits and not options["yes"]:
                self.confirm(plan)
            try:
                jobs = manifest.apply(entries, plan)
            except (ManifestError, CreditBudgetExceededError) as err:
                raise CommandError(str(err)) from None
            except BrokerUnavailableError as err:
                # The changes and the jobs are committed; only queueing failed.
                if options["json"]:
                    self.stdout.write(dump_json(as_json(plan, applied=True)))
                raise CommandError(
                    _(
                        "Applied, but the Celery broker is unreachable, so the %(count)d "
                        "generation(s) are saved and not sent: %(error)s Run manage.py "
                        "neuraldraft_refresh to send them now."
                    )
                    % {"count": plan.generations, "error": err}
                ) from err
            applied = True
            if not options["json"]:
                self.stdout.write(
                    self.style.SUCCESS(
                        _("Applied; %(jobs)d generation(s) queued.") % {"jobs": len(jobs)}
                    )
                )
        if options["json"]:
            self.stdout.write(dump_json(as_json(plan, applied)))

    def print_plan(self, plan: Plan) -> None:
        width = max((len(step.key) for step in plan.steps), default=0)
        for step in plan.steps:
            actions = ", ".join(step.actions)
            if UPDATE in step.actions:
                actions += f" ({', '.join(step.changes)})"
            if step.note:
                actions += f" - {step.note}"
            style = self.style.SUCCESS if GENERATE in step.actions else (lambda text: text)
            self.stdout.write(style(f"{step.key.ljust(width)}  {actions}"))
        self.stdout.write(
            _(
                "Plan: %(create)d to create, %(update)d to update, %(generate)d to generate "
                "(%(credits)d credits), %(unchanged)d unchanged."
            )
            % {
                "create": plan.count("create"),
                "update": plan.count("update"),
                "generate": plan.generations,
                "credits": plan.credits,
                "unchanged": plan.count(UNCHANGED),
            }
        )

    def confirm(self, plan: Plan) -> None:
        if not sys.stdin.isatty():
            raise CommandError(
                _(
                    "This plan spends %(credits)d credits; pass --yes to apply it without a "
                    "terminal to ask on."
                )
                % {"credits": plan.credits}
            )
        try:
            answer = input(_("Spend %(credits)d credits? [y/N] ") % {"credits": plan.credits})
        except EOFError:
            answer = ""
        except KeyboardInterrupt:
            raise CommandError(_("Nothing applied."), returncode=EXIT_INTERRUPTED) from None
        if answer.strip().lower() not in ("y", "yes"):
            raise CommandError(_("Nothing applied."))


def describe_problems(path: Path, problems: list[Problem]) -> str:
    """One line per problem, ``FILE:LINE: message``, the first :data:`PROBLEMS_SHOWN` only.

    A message may quote the file's own keys and field names, so it is printed
    as plain text (:func:`~django_neuraldraft.terminal.printable`).
    """
    lines = [
        f"{path}:{problem.line}: {printable(problem.message)}"
        if problem.line
        else f"{path}: {printable(problem.message)}"
        for problem in problems[:PROBLEMS_SHOWN]
    ]
    if len(problems) > PROBLEMS_SHOWN:
        lines.append(
            _("... and %(count)d more problem(s).") % {"count": len(problems) - PROBLEMS_SHOWN}
        )
    return "\n".join(lines)


def as_json(plan: Plan, applied: bool) -> dict[str, Any]:
    return {
        "steps": [
            {
                "key": step.key,
                "actions": list(step.actions),
                "changes": {
                    name: {"from": before, "to": after}
                    for name, (before, after) in step.changes.items()
                },
                "note": step.note,
            }
            for step in plan.steps
        ],
        "generations": plan.generations,
        "credits": plan.credits,
        "applied": applied,
    }
