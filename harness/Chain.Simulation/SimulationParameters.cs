namespace Chain.Simulation;

/// <summary>
/// Everything that decides one simulated run. The seed drives every random choice (interleaving, latencies,
/// faults, workload); the rest shapes the run and is what FsCheck shrinks. Rates are per cent per nemesis tick
/// (a tick every 0.2–1.5 s of virtual time while the workload runs).
/// </summary>
public sealed record SimulationParameters
{
    public int Seed { get; init; }
    public int Nodes { get; init; } = 3;
    public int Chains { get; init; } = 2;
    public int Replicas { get; init; } = 3;
    public int Clients { get; init; } = 3;
    public int Keys { get; init; } = 3;
    public int OpsPerClient { get; init; } = 8;
    /// <summary>Upper bound of a client's pause before each operation.</summary>
    public int ThinkMaxMs { get; init; } = 1500;
    /// <summary>Crash a node (it restarts after 0.5–8 s).</summary>
    public int CrashPercent { get; init; } = 5;
    /// <summary>Isolate one server (node or master) from the other servers for 0.5–10 s; clients still reach it.</summary>
    public int PartitionPercent { get; init; } = 5;
    /// <summary>Reset a random stream.</summary>
    public int DropPercent { get; init; } = 10;
    /// <summary>Pause (SIGSTOP) a node for 0.2–6 s: longer than a read lease and than the failure timeout, at times.</summary>
    public int PausePercent { get; init; } = 4;
    /// <summary>Crash the master (it restarts from its state store after 0.5–5 s).</summary>
    public int MasterCrashPercent { get; init; } = 2;
    /// <summary>Per mille of engine writes that fail with an I/O error.</summary>
    public int DiskErrorPermille { get; init; } = 2;
    /// <summary>Upper bound of one network hop's latency.</summary>
    public int LatencyMaxMs { get; init; } = 5;
    /// <summary>Upper bound of one engine write's latency.</summary>
    public int DiskLatencyMaxMs { get; init; } = 2;
    /// <summary>Per cent of the workload's reads sent to a random member of the chain (CRAQ) instead of the tail.</summary>
    public int CraqPercent { get; init; }
    /// <summary>Record the nodes' and master's own log lines (for replaying one seed).</summary>
    public bool Verbose { get; init; }

    public void Validate()
    {
        if (Nodes < 1 || Nodes > 16 || Replicas < 1 || Replicas > Nodes || Chains < 1 || Chains > 64)
            throw new ArgumentException($"invalid cluster shape: {Nodes} nodes, {Chains} chains of {Replicas}");
        if (Clients < 1 || Clients > 64 || Keys < 1 || Keys > 64 || OpsPerClient < 0 || OpsPerClient > 10_000)
            throw new ArgumentException("invalid workload shape");
        if (LatencyMaxMs < 0 || DiskLatencyMaxMs < 0 || ThinkMaxMs < 0)
            throw new ArgumentException("latencies must not be negative");
        if (CraqPercent is < 0 or > 100)
            throw new ArgumentException("the CRAQ read share is a percentage");
    }

    /// <summary>Parses the key=value form <see cref="ToString"/> prints (unknown words are ignored), for replays.</summary>
    public static SimulationParameters Parse(string text)
    {
        var p = new SimulationParameters();
        foreach (string word in text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = word.IndexOf('=');
            if (eq < 0)
                continue;
            string name = word[..eq];
            string digits = new(word[(eq + 1)..].TakeWhile(char.IsAsciiDigit).ToArray());
            if (!int.TryParse(digits, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int v))
                continue;
            p = name switch
            {
                "seed" => p with { Seed = v },
                "nodes" => p with { Nodes = v },
                "chains" => p with { Chains = v },
                "replicas" => p with { Replicas = v },
                "clients" => p with { Clients = v },
                "keys" => p with { Keys = v },
                "ops" => p with { OpsPerClient = v },
                "think" => p with { ThinkMaxMs = v },
                "crash" => p with { CrashPercent = v },
                "partition" => p with { PartitionPercent = v },
                "drop" => p with { DropPercent = v },
                "pause" => p with { PausePercent = v },
                "master-crash" => p with { MasterCrashPercent = v },
                "disk-errors" => p with { DiskErrorPermille = v },
                "latency" => p with { LatencyMaxMs = v },
                "disk" => p with { DiskLatencyMaxMs = v },
                "craq" => p with { CraqPercent = v },
                _ => p,
            };
        }
        return p;
    }

    public override string ToString() =>
        $"seed={Seed} nodes={Nodes} chains={Chains} replicas={Replicas} clients={Clients} keys={Keys} ops={OpsPerClient} think={ThinkMaxMs}ms " +
        $"crash={CrashPercent}% partition={PartitionPercent}% drop={DropPercent}% pause={PausePercent}% master-crash={MasterCrashPercent}% " +
        $"disk-errors={DiskErrorPermille}‰ latency={LatencyMaxMs}ms disk={DiskLatencyMaxMs}ms" + (CraqPercent > 0 ? $" craq={CraqPercent}%" : "");
}
