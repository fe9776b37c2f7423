"""Workflow glue: the params, the run plan, the submodel store and provenance.

The steps of the pipeline (``ame.data``, ``ame.sampling``, ``ame.training``, ``ame.behaviour``,
``ame.estimation``, ``ame.evaluation``, ``ame.report``) know nothing of files, budgets or params
layout beyond what these modules hand them.
"""
