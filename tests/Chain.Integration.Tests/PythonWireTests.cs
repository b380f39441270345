using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using Chain.Client;
using Chain.Harness;

namespace Chain.Integration.Tests;

/// <summary>
/// Wire compatibility with a real gRPC implementation: Debian's python3-grpcio, with stubs generated from our
/// .proto files by python3-grpc-tools in the test, reads from a running node (master config, Stat, Get).
/// </summary>
[Trait("Category", "Integration")]
public sealed class PythonWireTests : LocalClusterTest
{
    private const string Python = "/usr/bin/python3";

    public PythonWireTests() : base("py")
    {
    }


    private const string Script = """
        import hashlib, json, sys
        import grpc
        sys.path.insert(0, sys.argv[1])
        from chain.v1 import master_pb2, store_pb2, common_pb2

        master_addr, bucket, key = sys.argv[2], sys.argv[3], sys.argv[4].encode()

        def unary(channel, path, request, response_type, timeout=10):
            call = channel.unary_unary(path, request_serializer=lambda m: m.SerializeToString(),
                                       response_deserializer=response_type.FromString)
            return call(request, timeout=timeout)

        master = grpc.insecure_channel(master_addr)
        config = unary(master, "/chain.v1.Master/GetConfig", master_pb2.GetConfigRequest(), master_pb2.ClusterConfig)
        # Placement re-implemented independently: sha256(bucket 0x00 key), first 8 bytes big-endian, mod chains.
        def route(k):
            h = int.from_bytes(hashlib.sha256(bucket.encode() + b"\x00" + k).digest()[:8], "big")
            chain = config.chains[h % len(config.chains)]
            tail = [n.node.address for n in config.nodes if n.node.node_id == chain.nodes[-1]][0].replace("http://", "")
            return chain, common_pb2.Routing(chain_id=chain.chain_id, epoch=chain.epoch), grpc.insecure_channel(tail)

        chain, routing, node = route(key)

        stat = unary(node, "/chain.v1.ChainStore/Stat", store_pb2.StatRequest(routing=routing, bucket=bucket, key=key), store_pb2.StatResponse)

        get = node.unary_stream("/chain.v1.ChainStore/Get", request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=store_pb2.GetResponse.FromString)
        meta, data, messages = None, hashlib.sha256(), 0
        for part in get(store_pb2.GetRequest(routing=routing, bucket=bucket, key=key), timeout=30):
            messages += 1
            if part.WhichOneof("part") == "meta":
                meta = part.meta
            else:
                data.update(part.data)

        missing = {}
        try:
            _, missing_routing, missing_node = route(b"no/such/key")
            unary(missing_node, "/chain.v1.ChainStore/Stat", store_pb2.StatRequest(routing=missing_routing, bucket=bucket, key=b"no/such/key"), store_pb2.StatResponse)
        except grpc.RpcError as e:
            missing = {"code": e.code().name, "details": e.details(),
                       "kind": dict(e.trailing_metadata() or ()).get("chain-error")}

        stale = {}
        try:
            bad = common_pb2.Routing(chain_id=chain.chain_id, epoch=chain.epoch + 41)
            unary(node, "/chain.v1.ChainStore/Stat", store_pb2.StatRequest(routing=bad, bucket=bucket, key=key), store_pb2.StatResponse)
        except grpc.RpcError as e:
            stale = {"code": e.code().name, "kind": dict(e.trailing_metadata() or ()).get("chain-error")}

        print(json.dumps({
            "chains": len(config.chains),
            "stat_size": stat.meta.size, "stat_sha256": stat.meta.sha256.hex(), "stat_version": stat.meta.version,
            "get_size": meta.size, "get_messages": messages, "data_sha256": data.hexdigest(),
            "missing": missing, "stale": stale,
        }))
        """;

    [Fact]
    public async Task Python_grpcio_reads_an_object_from_the_tail()
    {
        using ChainClient client = Cluster.CreateClient();
        await client.CreateBucketAsync("wire");
        byte[] value = RandomNumberGenerator.GetBytes(2 * 1024 * 1024 + 4321);
        PutResult put = await client.PutAsync("wire", "py/object.bin", value);

        string stubs = Path.Combine(RootDirectory, "stubs");
        Directory.CreateDirectory(stubs);
        string protos = Path.Combine(AppContext.BaseDirectory, "protos");
        Run(Python, new[] { "-m", "grpc_tools.protoc", "-I" + protos, "--python_out=" + stubs, "--grpc_python_out=" + stubs,
            "chain/v1/common.proto", "chain/v1/store.proto", "chain/v1/master.proto" });
        string script = Path.Combine(RootDirectory, "read.py");
        await File.WriteAllTextAsync(script, Script);
        string master = Cluster.MasterAddress.ToString().Replace("http://", "").TrimEnd('/');
        string output = Run(Python, new[] { script, stubs, master, "wire", "py/object.bin" });

        using JsonDocument doc = JsonDocument.Parse(output);
        JsonElement r = doc.RootElement;
        string expectedSha = Convert.ToHexString(SHA256.HashData(value)).ToLowerInvariant();
        Assert.Equal(3, r.GetProperty("chains").GetInt32());
        Assert.Equal(value.Length, r.GetProperty("stat_size").GetInt64());
        Assert.Equal(expectedSha, r.GetProperty("stat_sha256").GetString());
        Assert.Equal((long)put.Version, r.GetProperty("stat_version").GetInt64());
        Assert.Equal(value.Length, r.GetProperty("get_size").GetInt64());
        Assert.Equal(expectedSha, r.GetProperty("data_sha256").GetString());
        Assert.Equal(1 + 3, r.GetProperty("get_messages").GetInt32());
        Assert.Equal("NOT_FOUND", r.GetProperty("missing").GetProperty("code").GetString());
        Assert.Equal("no-such-key", r.GetProperty("missing").GetProperty("kind").GetString());
        Assert.Contains("not found", r.GetProperty("missing").GetProperty("details").GetString());
        Assert.Equal("FAILED_PRECONDITION", r.GetProperty("stale").GetProperty("code").GetString());
        Assert.Equal("stale-epoch", r.GetProperty("stale").GetProperty("kind").GetString());
    }

    private static string Run(string file, string[] args)
    {
        if (!File.Exists(file))
            Assert.Fail($"{file} not found: install Debian's python3, python3-grpcio and python3-grpc-tools (scripts/setup-deps.sh does)");
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in args)
            psi.ArgumentList.Add(a);
        psi.Environment.Remove("PYTHONPATH");
        psi.Environment.Remove("PYTHONHOME");
        using Process p = Process.Start(psi)!;
        Task<string> stdout = p.StandardOutput.ReadToEndAsync();
        Task<string> stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromSeconds(120)))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"{file} {string.Join(' ', args)} timed out");
        }
        string err = stderr.Result;
        if (p.ExitCode != 0)
        {
            string hint = err.Contains("No module named 'grpc") ? " (install python3-grpcio and python3-grpc-tools: scripts/setup-deps.sh)" : "";
            Assert.Fail($"{file} {string.Join(' ', args)} exited {p.ExitCode}{hint}:\n{err}");
        }
        return stdout.Result;
    }
}
