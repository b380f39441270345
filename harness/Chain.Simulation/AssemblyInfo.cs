namespace Chain.Simulation;
