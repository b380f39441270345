using Google.Protobuf;

namespace Chain.Rpc;

/// <summary>
/// The calls a process makes on one remote endpoint. <see cref="RpcChannel"/> implements it over HTTP/2; the
/// deterministic simulation (harness/Chain.Simulation) implements it in memory. Same semantics as RpcChannel:
/// errors surface as <see cref="RpcException"/>, the call's cancellation token and timeout end it.
/// </summary>
public interface IRpcInvoker : IDisposable
{
    Uri Address { get; }

    Task<TResp> UnaryAsync<TReq, TResp>(Method<TReq, TResp> method, TReq request, CallOptions? options = null)
        where TReq : class, IMessage<TReq>
        where TResp : class, IMessage<TResp>;

    IAsyncEnumerable<TResp> ServerStreamingAsync<TReq, TResp>(Method<TReq, TResp> method, TReq request, CallOptions? options = null)
        where TReq : class, IMessage<TReq>
        where TResp : class, IMessage<TResp>;

    ClientStreamingCall<TReq, TResp> ClientStreaming<TReq, TResp>(Method<TReq, TResp> method, CallOptions? options = null)
        where TReq : class, IMessage<TReq>
        where TResp : class, IMessage<TResp>;

    DuplexCall<TReq, TResp> Duplex<TReq, TResp>(Method<TReq, TResp> method, CallOptions? options = null)
        where TReq : class, IMessage<TReq>
        where TResp : class, IMessage<TResp>;
}
