"""The closed loop on one simpy clock: traffic → scoring → auction → clicks → logs → online training →
deploy. `simulation` holds the processes and the run's state, `builders` the model and trainer a scenario
describes, `records` the logs it keeps, `checkpoint` saving and restoring that state, `results` a run's
output (per-tick metrics, the summary, its files)."""
