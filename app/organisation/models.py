"""Who commands and who works: departments, people, and an incident's command structure."""

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy import true as sa_true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.types import UTCDateTime

PERSON_ROLES = ("commander", "liaison", "staff", "inspector")


class Department(db.Model):
    """A member department of the command (成员单位), or a street or town office."""

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str | None] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(40))

    people: Mapped[list["Person"]] = relationship(back_populates="department")


class Person(db.Model):
    """Someone who can be paged: a commander, a department's liaison, an inspector."""

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"))
    role: Mapped[str] = mapped_column(String(20))
    title: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(40))
    # The standing roster: who holds the role when no shift covers the instant.
    on_duty: Mapped[bool] = mapped_column(default=True)
    # False while someone cannot be reached (ill, travelling): their shift's substitute,
    # or the next person of the standing roster, is paged instead.
    available: Mapped[bool] = mapped_column(default=True, server_default=sa_true())
    email: Mapped[str | None] = mapped_column(String(200))

    department: Mapped[Department] = relationship(back_populates="people")


class RosterShift(db.Model):
    """A person on duty for a role of a department from one instant to another (值班表),
    with the substitute who covers the shift if they cannot be reached."""

    id: Mapped[int] = mapped_column(primary_key=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"), index=True)
    role: Mapped[str] = mapped_column(String(20))
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"))
    substitute_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    starts_at = mapped_column(UTCDateTime, nullable=False)
    ends_at = mapped_column(UTCDateTime, nullable=False)
    note: Mapped[str | None] = mapped_column(Text)

    department: Mapped[Department] = relationship()
    person: Mapped[Person] = relationship(foreign_keys=[person_id])
    substitute: Mapped[Person | None] = relationship(foreign_keys=[substitute_id])


class CommandPost(db.Model):
    """The command post (指挥部) set up for one incident when its plan is activated."""

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id"), unique=True)
    commander_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    office_department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"))
    set_up_at = mapped_column(UTCDateTime, nullable=False)

    commander: Mapped[Person | None] = relationship(foreign_keys=[commander_id])


class WorkingGroup(db.Model):
    """A working group of the command for one incident (保供组, 医疗救治组...)."""

    __table_args__ = (UniqueConstraint("incident_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id"))
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str | None] = mapped_column(String(200))
    lead_department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"))

    members: Mapped[list["GroupMember"]] = relationship(back_populates="group")


class GroupMember(db.Model):
    """A person sitting in a working group, taken from the on-duty roster."""

    __table_args__ = (UniqueConstraint("group_id", "person_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("working_group.id"))
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"))

    group: Mapped[WorkingGroup] = relationship(back_populates="members")
    person: Mapped[Person] = relationship()
