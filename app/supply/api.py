"""The supply API: suppliers and demand points (also as CSV and Excel files), capacity
reports, hazard areas, allocations and supply tasks of an incident.

Reading is open; every change needs `Authorization: Bearer` with the API token of a
commander (a supplier user may report its own supplier's capacity). The request boundary
commits once or rolls back; services only flush.
"""

import io
import logging
import os
import tempfile

from flask import request, send_file
from flask.views import MethodView
from flask_smorest import abort
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.accounts.access import acting_user, require_roles
from app.api.routes import ID, Blueprint, NoQuery, PageQuery
from app.errors import Conflict, Forbidden, InvalidInput
from app.extensions import db
from app.incidents.models import Incident
from app.supply import capacity, imports
from app.supply import services as supply
from app.supply.models import AllocationRun, DemandPoint, Supplier, SupplyTask
from app.supply.schemas import (
    AllocationRequestSchema,
    AllocationRunSchema,
    CapacityReportOutSchema,
    CapacityReportSchema,
    DemandPointChangeSchema,
    DemandPointSchema,
    ExportQuerySchema,
    HazardAreaSchema,
    ImportQuerySchema,
    PointOpeningSchema,
    SupplierChangeSchema,
    SupplierSchema,
    SupplyTaskRequestSchema,
    SupplyTaskSchema,
)
from app.techsupport.risk import refresh_live_colours, risk_colours, start_colour
from app.types import utcnow

log = logging.getLogger(__name__)

blp = Blueprint("supply", __name__, url_prefix="/api", description="Suppliers, demand, tasks")

# Master data: what each kind is, its schema and its import kind.
KINDS = {
    "suppliers": (Supplier, SupplierSchema, SupplierChangeSchema, "suppliers"),
    "demand-points": (DemandPoint, DemandPointSchema, DemandPointChangeSchema, "demand"),
}


def _commit():
    """End the request's transaction; a unique code taken meanwhile is a conflict."""
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict("a record with this code exists, or it changed meanwhile") from None


def _incident(incident_id):
    return db.get_or_404(Incident, incident_id, description=f"No incident {incident_id}.")


def _open_incident(incident_id):
    """The incident, which must still be open to take changes (409 once closed)."""
    found = _incident(incident_id)
    if found.status == "closed":
        raise Conflict(f"incident {incident_id} is closed")
    return found


def _check_place(values, model):
    """Coordinates in or near the region, and a street of it: 422 naming the field."""
    from app.fixtures import configured_region, import_context

    if not {"lat", "lon", "street_code"} & set(values):
        return
    context = import_context(configured_region())
    errors = {}
    if "lat" in values or "lon" in values:
        try:
            imports.coordinates(values.get("lat"), values.get("lon"), context)
        except ValueError as error:
            errors["lat"] = [f"lat/lon {error}"]
    if values.get("street_code"):
        try:
            imports.street(values["street_code"], context)
        except ValueError as error:
            errors["street_code"] = [str(error)]
    if errors:
        raise InvalidInput(f"{model.__tablename__} refused", errors)


def _with_risk(model, rows):
    """Suppliers with their live colour and its reasons computed now, for the answer."""
    if model is Supplier:
        for row, risk in zip(rows, risk_colours(rows, at=utcnow()).values(), strict=True):
            row.risk = risk
    return rows


def _register_master(name):
    """List, create, read and change one kind of master data under /api/<name>."""
    model, schema, change, _kind = KINDS[name]

    class Collection(MethodView):
        @blp.arguments(PageQuery, location="query")
        @blp.response(200, schema(many=True))
        def get(self, page):
            query = select(model).order_by(model.id)
            rows = db.session.scalars(query.limit(page["limit"]).offset(page["offset"])).all()
            return _with_risk(model, rows)

        @require_roles("commander")
        @blp.arguments(schema)
        @blp.response(201, schema)
        @blp.alt_response(409, description="The code is taken")
        def post(self, values):
            _check_place(values, model)
            if db.session.scalar(select(model.id).filter_by(code=values["code"])) is not None:
                raise Conflict(f"{values['code']} exists; change it with PATCH")
            row = model(**values)
            if model is Supplier:
                row.risk_colour = start_colour(row.rating)
            db.session.add(row)
            _commit()
            return _with_risk(model, [row])[0]

    class Item(MethodView):
        @blp.arguments(NoQuery, location="query", as_kwargs=True)
        @blp.response(200, schema)
        def get(self, row_id):
            return _with_risk(model, [db.get_or_404(model, row_id)])[0]

        @require_roles("commander")
        @blp.arguments(change(partial=True))
        @blp.response(200, schema)
        def patch(self, values, row_id):
            row = db.get_or_404(model, row_id)
            if "code" in values and values["code"] != row.code:
                raise InvalidInput("change refused", {"code": ["a code cannot change"]})
            merged = {"lat": row.lat, "lon": row.lon, **values}
            _check_place(merged, model)
            for key, value in values.items():
                setattr(row, key, value)
            if getattr(row, "hot_holding", False) and getattr(row, "chilled", False):
                raise InvalidInput(
                    "change refused", {"chilled": ["a kitchen delivers hot or chilled, not both"]}
                )
            if model is Supplier and "rating" in values:
                refresh_live_colours([row], at=utcnow())
            _commit()
            return _with_risk(model, [row])[0]

    Collection.__name__ = f"{model.__name__}Collection"
    Item.__name__ = f"{model.__name__}Item"
    # Through blp.route, so the OpenAPI document lists every method.
    blp.route(f"/{name}", endpoint=Collection.__name__)(Collection)
    blp.route(f"/{name}/<{ID}:row_id>", endpoint=Item.__name__)(Item)


for _name in KINDS:
    _register_master(_name)


@blp.route("/<any(suppliers, 'demand-points'):name>/import")
class Import(MethodView):
    @require_roles("commander")
    @blp.arguments(ImportQuerySchema, location="query", as_kwargs=True)
    @blp.response(200)
    @blp.alt_response(422, description="The file is refused whole, every bad row named")
    def post(self, name, coords):
        """Import a CSV or .xlsx file sent as `file` in a multipart form: all or nothing,
        rows matched by code."""
        from app.fixtures import configured_region, import_context

        upload = request.files.get("file")
        if upload is None or not upload.filename:
            raise InvalidInput("import refused", {"file": ["send the file as form field file"]})
        kind = KINDS[name][3]
        context = import_context(configured_region(), coords)
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "upload" + os.path.splitext(upload.filename)[1][:8])
            _save_limited(upload, path)
            summary = imports.import_file(path, kind, context, name=upload.filename[:200])
        _commit()
        return summary


def _save_limited(upload, path):
    with open(path, "wb") as target:
        copied = 0
        while chunk := upload.stream.read(1 << 16):
            copied += len(chunk)
            if copied > imports.MAX_FILE_BYTES:
                abort(413, message=f"a file is at most {imports.MAX_FILE_BYTES // 2**20} MiB")
            target.write(chunk)


@blp.route("/<any(suppliers, 'demand-points'):name>/export")
class Export(MethodView):
    @blp.arguments(ExportQuerySchema, location="query", as_kwargs=True)
    @blp.response(200)
    def get(self, name, format, headers):
        """Every record of the kind as a CSV (UTF-8 with BOM) or .xlsx file."""
        kind = KINDS[name][3]
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, f"{name}.{format}")
            imports.export_file(path, kind, language=headers)
            with open(path, "rb") as handle:
                data = handle.read()
        mimetype = {
            "csv": "text/csv",
            "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }[format]
        return send_file(
            io.BytesIO(data),
            mimetype=mimetype,
            as_attachment=True,
            download_name=path.rsplit("/", 1)[-1],
        )


@blp.route(f"/incidents/<{ID}:incident_id>/capacity-reports")
class CapacityReports(MethodView):
    @blp.arguments(PageQuery, location="query")
    @blp.response(200, CapacityReportOutSchema(many=True))
    def get(self, page, incident_id):
        from app.supply.models import CapacityReport

        found = _incident(incident_id)
        query = (
            select(CapacityReport)
            .where(CapacityReport.scope == capacity.scope_of(found))
            .order_by(CapacityReport.id)
        )
        return db.session.scalars(query.limit(page["limit"]).offset(page["offset"])).all()

    @require_roles("commander", "supplier")
    @blp.arguments(CapacityReportSchema)
    @blp.response(201, CapacityReportOutSchema)
    @blp.alt_response(403, description="A supplier user reporting for another supplier")
    def post(self, values, incident_id):
        """A supplier's new capacity for a meal from an instant on; the plan is solved
        again for the serving times it touches. A supplier user reports for its own."""
        _check_own_supplier(values["supplier"])
        found = _open_incident(incident_id)
        supplier = supply.supplier_by_code(values["supplier"])
        report = capacity.report_capacity(
            supplier,
            found,
            meal=values["meal"],
            meals=values["meals"],
            valid_from=values["valid_from"],
            at=_now(found),
            note=values.get("note"),
        )
        _commit()
        return report


def _check_own_supplier(code):
    """A supplier user speaks for its own supplier only."""
    user = acting_user()
    if user.role == "supplier" and (user.supplier is None or user.supplier.code != code):
        raise Forbidden(f"{user.username} reports capacity for its own supplier only")


@blp.route(f"/incidents/<{ID}:incident_id>/demand-points")
class PointOpenings(MethodView):
    @blp.arguments(PageQuery, location="query")
    @blp.response(200, PointOpeningSchema(many=True))
    def get(self, page, incident_id):
        """The points open for the incident now, with headcounts and special diets."""
        found = _incident(incident_id)
        rows = supply.current_openings(found, _now(found))
        return [_opening(row) for row in rows[page["offset"] : page["offset"] + page["limit"]]]

    @require_roles("commander")
    @blp.arguments(PointOpeningSchema)
    @blp.response(201, PointOpeningSchema)
    def post(self, values, incident_id):
        """Open a demand point for the incident, change its headcount, or close it with
        0; meals already planned for it are planned again by a job."""
        found = _open_incident(incident_id)
        point = supply.demand_point_by_code(values["demand_point"])
        if values["headcount"] > point.capacity:
            raise InvalidInput(
                "opening refused",
                {"headcount": [f"{point.code} holds at most {point.capacity} people"]},
            )
        diets = {diet: values[diet] for diet in ("halal", "vegetarian", "infant", "soft_diet")}
        opening = supply.open_point(
            found, point, headcount=values["headcount"], at=_now(found), diets=diets
        )
        _commit()
        return _opening(opening)


def _opening(row):
    diets = ("halal", "vegetarian", "infant", "soft_diet")
    return {"id": row.id, "demand_point": row.demand_point.code, "headcount": row.headcount,
            "at": row.at, **{diet: getattr(row, diet) for diet in diets}}  # fmt: skip


@blp.route(f"/incidents/<{ID}:incident_id>/hazard-areas")
class HazardAreas(MethodView):
    @require_roles("commander")
    @blp.arguments(HazardAreaSchema)
    @blp.response(201, HazardAreaSchema)
    def post(self, values, incident_id):
        """Declare an area unsafe (GeoJSON Polygon, WGS-84): kitchens inside take no work,
        and their open tasks move."""
        found = _open_incident(incident_id)
        hazard = capacity.declare_hazard(
            found, name=values["name"], geometry=values["geometry"], at=_now(found)
        )
        _commit()
        return hazard


@blp.route(f"/incidents/<{ID}:incident_id>/allocations")
class Allocations(MethodView):
    @blp.arguments(PageQuery, location="query")
    @blp.response(200, AllocationRunSchema(many=True))
    def get(self, page, incident_id):
        """Every solve of the incident's plan, with shortfall and the tasks it moved."""
        _incident(incident_id)
        query = select(AllocationRun).filter_by(incident_id=incident_id).order_by(AllocationRun.id)
        return db.session.scalars(query.limit(page["limit"]).offset(page["offset"])).all()

    @require_roles("commander")
    @blp.arguments(AllocationRequestSchema)
    @blp.response(201, AllocationRunSchema)
    def post(self, values, incident_id):
        """Solve one meal: what is still uncovered goes to suppliers as new tasks."""
        found = _open_incident(incident_id)
        at = _now(found)
        supply.check_serving_time(found, values["meal"], values["serve_at"], at)
        run, _tasks = supply.allocate_meal(found, values["meal"], values["serve_at"], at)
        _commit()
        _relay(found)
        return run


@blp.route(f"/incidents/<{ID}:incident_id>/supply-tasks")
class SupplyTasks(MethodView):
    @blp.arguments(PageQuery, location="query")
    @blp.response(200, SupplyTaskSchema(many=True))
    def get(self, page, incident_id):
        _incident(incident_id)
        query = select(SupplyTask).filter_by(incident_id=incident_id).order_by(SupplyTask.id)
        return db.session.scalars(query.limit(page["limit"]).offset(page["offset"])).all()

    @require_roles("commander")
    @blp.arguments(SupplyTaskRequestSchema)
    @blp.response(201, SupplyTaskSchema)
    @blp.alt_response(409, description="The supplier has not the meals left, or may not serve")
    def post(self, values, incident_id):
        """Set a supply task by hand. Two requests that would together exceed what the
        supplier can cook: one succeeds, the other gets 409."""
        found = _open_incident(incident_id)
        task = supply.assign_by_hand(
            found,
            supply.supplier_by_code(values["supplier"]),
            supply.demand_point_by_code(values["demand_point"]),
            meal=values["meal"],
            serve_at=values["serve_at"],
            meals=values["meals"],
            by_diet=values.get("by_diet"),
            at=_now(found),
        )
        _commit()
        _relay(found)
        return task


def _now(found):
    from app.clock.services import now

    return now(found)


def _relay(found):
    """Put the new tasks on the queue now. They are committed already: if Redis does not
    answer, the relay process puts them on the queue when it does."""
    from redis.exceptions import RedisError

    from app.supply.dispatch import relay

    try:
        relay([found.id])
    except (RedisError, OSError) as error:
        log.warning(
            "incident %s: relay after the request failed (%s); left to the relay", found.id, error
        )
