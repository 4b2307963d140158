"""coursekit: the engines, data and exercise tools of Module 20 — Emerging Topics & Advanced Concepts.

Nothing runs on import. Import the module you need::

    from coursekit import kafka, spark, tracking, featurestore, data
    from coursekit.exercises import check
"""

__version__ = "0.1.0"
