"""Map builders: turn plain data into self-contained HTML pages drawn with Folium.

Builders take dicts and lists prepared by the module services, never a request or ORM
objects, so they can run in a view, a worker or a benchmark alike.
"""
