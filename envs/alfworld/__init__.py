"""ALFWorld games made locally from what the alfworld package ships, played on its engine.

`scenes` reads ALFRED's room layouts and object rules, `tasks` draws a game (room, task, initial
state), `pddl` writes it as ALFWorld's files, `build` generates and solves games into a cache
folder, `engine` runs a game with ALFWorld's wrappers and expert, `export` turns a household
task into an ALFWorld game. The `alfworld` suite (`envs.adapters.alfworld`) uses them; nothing
here is imported unless that suite is built, since the alfworld package is optional.
"""
