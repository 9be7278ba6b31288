"""`flask notify …`: the DingTalk group robots notifications go out through.

A robot's secret is read from stdin, never from the command line (where `ps` and the
shell history would keep it), and is shown back only by its last characters.
"""

import sys

import click
from flask.cli import AppGroup

from app.cli import _print_json, handles_errors
from app.errors import InvalidInput
from app.extensions import db

notify_cli = AppGroup("notify", help="Notification channels: DingTalk group robots.")


def _department(code, command_post):
    from app.organisation.services import department

    if bool(code) == bool(command_post):
        raise InvalidInput(
            "robot refused", {"department": ["give --department CODE or --command-post"]}
        )
    if command_post:
        return None
    found = department(code)
    if found is None:
        raise InvalidInput("robot refused", {"department": [f"no department {code!r}"]})
    return found


@notify_cli.command("set-robot")
@click.option("--department", "department_code", help="code of the department the group is of")
@click.option("--command-post", is_flag=True, help="the command post's group, for departments "
              "without a robot of their own")  # fmt: skip
@click.option("--name", required=True, help="the group's name, as pages show it")
@click.option("--url", required=True, help="the robot's webhook URL, with its access_token")
@click.option("--secret-stdin", is_flag=True, help="read the robot's signing secret (SEC…) "
              "from the first line of stdin")  # fmt: skip
@handles_errors
def set_robot_command(department_code, command_post, name, url, secret_stdin):
    """Add or replace a group robot. Prints it as JSON, the secret shortened."""
    from app.coordination.delivery import describe_robot, set_robot
    from app.types import utcnow

    owner = _department(department_code, command_post)
    secret = sys.stdin.readline().strip() if secret_stdin else None
    robot = set_robot(owner, name=name, url=url, secret=secret, at=utcnow())
    db.session.commit()
    _print_json(describe_robot(robot))


@notify_cli.command("remove-robot")
@click.option("--department", "department_code", help="code of the department")
@click.option("--command-post", is_flag=True, help="the command post's robot")
@handles_errors
def remove_robot_command(department_code, command_post):
    """Remove a group robot; its pending deliveries fail as having no robot. Prints JSON."""
    from sqlalchemy import select

    from app.coordination.models import GroupRobot

    owner = _department(department_code, command_post)
    where = (
        GroupRobot.department_id.is_(None)
        if owner is None
        else GroupRobot.department_id == owner.id
    )
    robot = db.session.scalar(select(GroupRobot).where(where))
    if robot is None:
        raise InvalidInput("nothing removed", {"department": ["has no robot"]})
    db.session.delete(robot)
    db.session.commit()
    _print_json({"removed": robot.name})


@notify_cli.command("robots")
@handles_errors
def robots_command():
    """Every group robot as JSON, access tokens and secrets shortened."""
    from sqlalchemy import select

    from app.coordination.delivery import describe_robot
    from app.coordination.models import GroupRobot

    robots = db.session.scalars(select(GroupRobot).order_by(GroupRobot.id)).all()
    _print_json({"robots": [describe_robot(robot) for robot in robots]})
