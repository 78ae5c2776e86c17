"""The ``structural`` stage: structural probes of dependency trees (Hewitt & Manning, 2019).

The probes and metrics live in :mod:`probe.probes.structural` and :mod:`probe.probes.trees`;
this package holds the study section (:mod:`probe.structural.config`) and the stage that runs
them on UD English EWT and writes the tables (:mod:`probe.structural.stage`).
"""
