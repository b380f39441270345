using System.Globalization;
using System.Net;
using Chain.Agent;
using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;
using Google.Protobuf;
using Spectre.Console;

namespace Chain.Cli;

/// <summary>`chain agent` (a peer agent in the foreground), `chain agent status` and `chain get --p2p`.</summary>
internal static class AgentCommand
{
    /// <summary>Where `chain agent` listens and where `get --p2p` / `agent status` look for it by default.</summary>
    public const string DefaultAgent = "127.0.0.1:7600";
    /// <summary>The tracker of `chain up` (its --tracker-port default).</summary>
    public static readonly string DefaultTracker = "127.0.0.1:" + CliApp.UpDefaultTrackerPort.ToString(CultureInfo.InvariantCulture);

    public static async Task<int> RunAsync(ParsedCommand command, CliIo io)
    {
        if (command.Positionals.Count == 1)
        {
            return command.Positionals[0] switch
            {
                "status" => await StatusAsync(command, io).ConfigureAwait(false),
                "swarms" => await SwarmsAsync(command, io).ConfigureAwait(false),
                _ => throw new UsageException($"unknown agent subcommand '{command.Positionals[0]}' (known: status, swarms)", command.Name),
            };
        }
        string tracker = command.Option("tracker") ?? DefaultTracker;
        var options = new PeerAgentOptions
        {
            Listen = IPEndPoint.TryParse(command.Option("listen") ?? DefaultAgent, out var listen) ? listen
                : throw new UsageException($"--listen must be IP:PORT, not '{command.Option("listen")}'", command.Name),
            Master = command.Master,
            Tracker = tracker == "none" ? null : Address(tracker, "tracker", command),
            CacheDirectory = Path.GetFullPath(command.Option("cache-dir") ?? "agent-cache"),
            CacheBytes = command.LongOption("cache-bytes", 1, long.MaxValue) ?? 1L << 30,
            UploadBytesPerSecond = command.LongOption("upload-rate", 0, long.MaxValue) ?? 0,
            DownloadBytesPerSecond = command.LongOption("download-rate", 0, long.MaxValue) ?? 0,
            Zone = command.Option("zone") ?? "",
            MaxUploads = command.IntOption("max-uploads", 4, 1, 1024)!.Value,
            DataPort = command.IntOption("data-port", 0, -1, 65535)!.Value,
        };
        await using var agent = await PeerAgent.StartAsync(options, io.Cancellation).ConfigureAwait(false);
        io.Out.WriteLine($"agent {agent.PeerId} listening on {CliApp.Endpoint(agent.Address)}" +
            (agent.DataEndPoint is { } data ? $", data port {data.Port}" : ", no data port"));
        io.Out.WriteLine($"  master {CliApp.Endpoint(options.Master)}, tracker {(options.Tracker is null ? "none (store only)" : CliApp.Endpoint(options.Tracker))}");
        io.Out.WriteLine($"  cache {options.CacheDirectory}: {CliApp.FormatBytes(agent.Cache.UsedBytes)} of {CliApp.FormatBytes(options.CacheBytes)}");
        io.Out.WriteLine("press Ctrl-C to stop");
        io.Out.Flush();
        try
        {
            await Task.Delay(Timeout.Infinite, io.Cancellation).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        await agent.StopAsync().ConfigureAwait(false);
        io.Out.WriteLine("stopped");
        return CliApp.Ok;
    }

    private static Uri Address(string text, string option, ParsedCommand command)
    {
        if (text.StartsWith("http://", StringComparison.Ordinal) && Uri.TryCreate(text, UriKind.Absolute, out var uri))
            return uri;
        if (IPEndPoint.TryParse(text, out var endpoint) && endpoint.Port > 0)
            return new Uri("http://" + endpoint);
        throw new UsageException($"--{option} must be IP:PORT or http://IP:PORT, not '{text}'", command.Name);
    }

    private static Uri AgentAddress(ParsedCommand command) => Address(command.Option("agent") ?? DefaultAgent, "agent", command);

    private static async Task<int> StatusAsync(ParsedCommand command, CliIo io)
    {
        var address = AgentAddress(command);
        using var channel = new RpcChannel(address);
        var status = await channel.UnaryAsync(AgentMethods.Status, new AgentStatusRequest(),
            new CallOptions { Timeout = TimeSpan.FromSeconds(10), CancellationToken = io.Cancellation }).ConfigureAwait(false);
        io.Out.WriteLine($"agent {status.PeerId} at {CliApp.Endpoint(address)}: cache {CliApp.FormatBytes((long)status.CacheBytes)} of " +
                         $"{CliApp.FormatBytes((long)status.CacheCapacityBytes)}, {status.UploadsInFlight} upload(s) in flight");
        if (status.Downloads.Count == 0)
            io.Out.WriteLine("no downloads in progress");
        long now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        foreach (var download in status.Downloads)
        {
            io.Out.WriteLine($"{download.ObjectName}  {download.ChunksDone}/{download.ChunkCount} chunks  (swarm {download.SwarmId[..Math.Min(16, download.SwarmId.Length)]}…)");
            if (download.Waiting.Count == 0)
                io.Out.WriteLine(download.RetryAfterMs > 0 ? $"  waiting on the tracker for a source (retry after {download.RetryAfterMs} ms)" : "  nothing in flight");
            foreach (var waiting in download.Waiting)
            {
                double seconds = Math.Max(0, now - waiting.SinceUnixMs) / 1000.0;
                io.Out.WriteLine($"  chunk {waiting.Chunk,5} waits on {waiting.Source} for {seconds.ToString("0.0", CultureInfo.InvariantCulture)} s, " +
                                 $"{CliApp.FormatBytes((long)waiting.BytesReceived)} received");
            }
        }
        return CliApp.Ok;
    }

    /// <summary>
    /// `chain agent swarms`: the tracker's metrics per object (bytes from peers vs the store, re-fetches after failed
    /// verification) and per peer (what it holds, where its bytes came from, what it uploaded, time to complete).
    /// </summary>
    private static async Task<int> SwarmsAsync(ParsedCommand command, CliIo io)
    {
        var tracker = Address(command.Option("tracker") ?? DefaultTracker, "tracker", command);
        using var channel = new RpcChannel(tracker);
        var status = await channel.UnaryAsync(TrackerMethods.SwarmStatus, new SwarmStatusRequest(),
            new CallOptions { Timeout = TimeSpan.FromSeconds(10), CancellationToken = io.Cancellation }).ConfigureAwait(false);
        if (status.Swarms.Count == 0)
            io.Out.WriteLine($"tracker {CliApp.Endpoint(tracker)}: no swarms");
        foreach (var swarm in status.Swarms)
        {
            ulong total = swarm.BytesFromPeers + swarm.BytesFromStore;
            string share = total == 0 ? "-" : (100.0 * swarm.BytesFromPeers / total).ToString("0", CultureInfo.InvariantCulture) + "%";
            int complete = swarm.Peers.Count(p => p.CompletedUnixMs != 0);
            io.Out.WriteLine($"{(swarm.ObjectName.Length > 0 ? swarm.ObjectName : "(unnamed)")}  {CliApp.FormatBytes((long)swarm.ObjectSize)} in {swarm.ChunkCount} chunks  " +
                             $"(swarm {swarm.SwarmId[..Math.Min(16, swarm.SwarmId.Length)]}…)");
            io.Out.WriteLine($"  from peers {CliApp.FormatBytes((long)swarm.BytesFromPeers)} ({share}), from the store {CliApp.FormatBytes((long)swarm.BytesFromStore)}, " +
                             $"re-fetched after failed verification {swarm.RefetchedAfterVerification}, {complete} of {swarm.Peers.Count} peer(s) complete");
            foreach (var peer in swarm.Peers)
            {
                string took = peer.CompletedUnixMs == 0 ? "downloading"
                    : peer.JoinedUnixMs == 0 ? "complete"
                    : $"complete in {((peer.CompletedUnixMs - peer.JoinedUnixMs) / 1000.0).ToString("0.0", CultureInfo.InvariantCulture)} s";
                io.Out.WriteLine($"  {peer.PeerId}{(peer.Zone.Length > 0 ? " [" + peer.Zone + "]" : "")}: {peer.ChunksHeld}/{swarm.ChunkCount} chunks, " +
                                 $"from peers {CliApp.FormatBytes((long)peer.BytesFromPeers)}, from the store {CliApp.FormatBytes((long)peer.BytesFromStore)}, " +
                                 $"uploaded {CliApp.FormatBytes((long)peer.BytesUploaded)}, {took}" +
                                 (peer.VerificationFailuresCaused > 0 ? $", served {peer.VerificationFailuresCaused} bad chunk(s)" : "") +
                                 (peer.Avoided ? ", AVOIDED" : ""));
            }
        }
        return CliApp.Ok;
    }

    /// <summary>`chain get --p2p BUCKET/KEY FILE`: through the local agent's Fetch; the whole object's SHA-256 checked here too.</summary>
    public static async Task<int> GetAsync(ParsedCommand command, CliIo io, ObjectPath path, string destination)
    {
        var address = AgentAddress(command);
        if (destination != "-" && Directory.Exists(destination))
            destination = Path.Combine(destination, CliApp.LocalNameOf(path));
        string partial = destination + ".partial";
        using var channel = new RpcChannel(address);
        var request = new FetchRequest { Bucket = path.Bucket, Key = ByteString.CopyFrom(Validation.EncodeKey(path.Key)) };
        Stream output = destination == "-" ? io.OpenStandardOutput()
            : new FileStream(partial, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous);
        ObjectMeta? meta = null;
        FetchProgress? last = null;
        try
        {
            await using (output.ConfigureAwait(false))
            {
                using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
                async Task ReceiveAsync(Action<FetchProgress>? onProgress)
                {
                    await foreach (var message in channel.ServerStreamingAsync(AgentMethods.Fetch, request, new CallOptions { CancellationToken = io.Cancellation })
                                       .WithCancellation(io.Cancellation).ConfigureAwait(false))
                    {
                        switch (message.PartCase)
                        {
                            case FetchResponse.PartOneofCase.Progress:
                                last = message.Progress;
                                onProgress?.Invoke(message.Progress);
                                break;
                            case FetchResponse.PartOneofCase.Meta:
                                meta = message.Meta;
                                break;
                            case FetchResponse.PartOneofCase.Data:
                                hash.AppendData(message.Data.Span);
                                await output.WriteAsync(message.Data.Memory, io.Cancellation).ConfigureAwait(false);
                                break;
                        }
                    }
                }
                if (io.ErrorIsTerminal && io.ErrorConsole is { } console)
                {
                    await console.Progress().AutoClear(false).HideCompleted(false)
                        .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new DownloadedColumn(), new TransferSpeedColumn())
                        .StartAsync(async context =>
                        {
                            var peers = context.AddTask("from peers", autoStart: true, maxValue: 1);
                            var store = context.AddTask("from store", autoStart: true, maxValue: 1);
                            var cached = context.AddTask("from cache", autoStart: true, maxValue: 1);
                            await ReceiveAsync(p =>
                            {
                                double size = Math.Max(1, p.ObjectSize);
                                peers.MaxValue = store.MaxValue = cached.MaxValue = size;
                                peers.Value = p.BytesFromPeers;
                                store.Value = p.BytesFromStore;
                                cached.Value = p.BytesFromCache;
                            }).ConfigureAwait(false);
                        }).ConfigureAwait(false);
                }
                else
                {
                    await ReceiveAsync(null).ConfigureAwait(false);
                }
                if (meta is null)
                    throw new InvalidDataException($"the agent at {CliApp.Endpoint(address)} ended the fetch without the object's metadata");
                string digest = Convert.ToHexStringLower(hash.GetHashAndReset());
                string expected = Convert.ToHexStringLower(meta.Sha256.Span);
                if (digest != expected)
                    throw new InvalidDataException($"{path}: the agent's data has SHA-256 {digest}, the object's is {expected}");
                await output.FlushAsync(io.Cancellation).ConfigureAwait(false);
                if (output is FileStream file)
                    file.Flush(flushToDisk: true);
            }
            if (destination != "-")
                File.Move(partial, destination, overwrite: true);
        }
        catch
        {
            if (destination != "-")
                TryDelete(partial);
            throw;
        }
        if (destination != "-")
        {
            io.Out.WriteLine($"get --p2p {path} -> {destination}");
            io.Out.WriteLine($"  size:    {meta.Size} ({CliApp.FormatBytes((long)meta.Size)})");
            io.Out.WriteLine($"  sha256:  {Convert.ToHexStringLower(meta.Sha256.Span)}");
            if (last is not null)
            {
                io.Out.WriteLine($"  from peers {CliApp.FormatBytes((long)last.BytesFromPeers)}, store {CliApp.FormatBytes((long)last.BytesFromStore)}, " +
                                 $"cache {CliApp.FormatBytes((long)last.BytesFromCache)}; re-fetched after verification: {last.RefetchedAfterVerification}");
            }
        }
        return CliApp.Ok;
    }

    private static void TryDelete(string file)
    {
        try
        {
            File.Delete(file);
        }
        catch (IOException)
        {
        }
    }
}
