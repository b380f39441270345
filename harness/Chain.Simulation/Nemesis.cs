using Chain.Simulation.Network;
using Chain.Simulation.Runtime;

namespace Chain.Simulation;

/// <summary>
/// Injects faults from the seed while the workload runs: node crashes and restarts, master crashes, partitions
/// isolating one server from the other servers (clients still reach it: the stale-tail case), stream resets,
/// and pauses (SIGSTOP) of nodes, some longer than a read lease and than the failure timeout. Every fault it
/// starts it also ends after a random time, and the simulator heals whatever is left when the workload is done.
/// </summary>
internal sealed class Nemesis(SimProcess process, SimExecutor executor, SimNetwork net, SimCluster cluster, SimLog log, SimulationParameters parameters)
{
    public long Faults { get; private set; }

    private Random Random => executor.Random;

    private bool Roll(int percent) => percent > 0 && Random.Next(100) < percent;

    private TimeSpan Between(double minSeconds, double maxSeconds) =>
        TimeSpan.FromMilliseconds(Random.Next((int)(minSeconds * 1000), (int)(maxSeconds * 1000) + 1));

    public async Task RunAsync(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            await Task.Delay(Between(0.2, 1.5), process.Time);
            net.ResetStalledCalls();
            if (Roll(parameters.CrashPercent))
                CrashNode();
            if (Roll(parameters.MasterCrashPercent) && cluster.MasterUp)
            {
                Faults++;
                cluster.CrashMaster();
                After(Between(0.5, 5), cluster.RestartMaster);
            }
            if (Roll(parameters.PartitionPercent))
                Partition();
            if (Roll(parameters.DropPercent) && net.ResetRandomCall())
                Faults++;
            if (Roll(parameters.PausePercent))
                PauseNode();
        }
    }

    private void After(TimeSpan delay, Action action) =>
        executor.At(executor.Now + delay.Ticks, process, action);

    private void CrashNode()
    {
        int i = Random.Next(cluster.NodeCount);
        if (!cluster.NodeUp(i))
            return;
        Faults++;
        cluster.CrashNode(i);
        After(Between(0.5, 8), () => cluster.RestartNode(i));
    }

    private void Partition()
    {
        // One server (a node or the master) cut off from every other server.
        int victim = Random.Next(cluster.NodeCount + 1);
        string host = victim == cluster.NodeCount ? SimCluster.MasterHost : SimCluster.NodeId(victim);
        Faults++;
        log.Event($"isolate {host}");
        for (int i = 0; i < cluster.NodeCount; i++)
            net.Block(host, SimCluster.NodeId(i));
        net.Block(host, SimCluster.MasterHost);
        After(Between(0.5, 10), () =>
        {
            log.Event("heal partitions");
            net.HealAll();
        });
    }

    private void PauseNode()
    {
        int i = Random.Next(cluster.NodeCount);
        if (!cluster.NodeUp(i))
            return;
        Faults++;
        TimeSpan length = Between(0.2, 6);
        log.Event($"pause {SimCluster.NodeId(i)} for {length.TotalSeconds:F1}s");
        cluster.Pause(i, true);
        After(length, () =>
        {
            log.Event($"resume {SimCluster.NodeId(i)}");
            cluster.Pause(i, false);
        });
    }
}
