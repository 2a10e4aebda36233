using System.Collections.Concurrent;
using System.Diagnostics;
using CriRuntime.Api;
using CriRuntime.IntegrationTests;
using CriRuntime.IntegrationTests.Pods;
using Grpc.Core;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.FuzzTests;

/// <summary>
/// Eight clients, each on a connection of its own, for 30 s run, stop and remove the same pod (one metadata, as a
/// kubelet retrying a pod would send it) and create and start containers in whichever pod of that name they last
/// saw, so creates land in pods being stopped and removed. Every answer must be a success or a code that names the
/// race (NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION), none may hang, and afterwards everything can be removed and
/// nothing is left: records, mounts, processes, cgroups, namespace pins, veths, IPs in host-local's store.
/// </summary>
[Collection(RegistryCollection.Name)]
public sealed class SamePodConcurrencyTests(RegistryFixture registry, ITestOutputHelper output) : PodTest(registry, output)
{
    private const int Clients = 8;
    private static readonly TimeSpan Duration = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Eight_clients_running_stopping_and_removing_one_pod_name_leave_nothing_behind()
    {
        var daemon = await StartPodDaemonAsync();
        var podConfig = NewPodConfig("contended");
        TrackPod(podConfig.Metadata.Uid);

        var podIds = new ConcurrentDictionary<string, bool>();
        var containerIds = new ConcurrentDictionary<string, bool>();
        var answers = new ConcurrentDictionary<string, int>();
        var wrong = new ConcurrentQueue<string>();
        string latestPod = "";
        int containerCounter = 0;

        void Note(string op, StatusCode code, string detail)
        {
            answers.AddOrUpdate($"{op} {code}", 1, (_, n) => n + 1);
            if (code is not (StatusCode.OK or StatusCode.NotFound or StatusCode.AlreadyExists or StatusCode.FailedPrecondition))
                wrong.Enqueue($"{op} -> {code}: {Findings.Cut(detail)}");
        }

        async Task<(T? Response, StatusCode Code)> Call<T>(string op, Func<DateTime, AsyncUnaryCall<T>> call) where T : class
        {
            try
            {
                var response = await call(DateTime.UtcNow + CallTimeout);
                Note(op, StatusCode.OK, "");
                return (response, StatusCode.OK);
            }
            catch (RpcException e)
            {
                Note(op, e.StatusCode, e.Status.Detail);
                return (null, e.StatusCode);
            }
        }

        var clock = Stopwatch.StartNew();
        var clients = Enumerable.Range(0, Clients).Select(n => Task.Run(async () =>
        {
            using var channel = CriChannel.ForUnixSocket(daemon.Socket);
            var runtime = new RuntimeService.RuntimeServiceClient(channel);
            var rng = new Random(n);
            while (clock.Elapsed < Duration)
            {
                // A few ms between calls: more interleavings of the slow calls, fewer of a spinning loop on a shared 2-core host.
                await Task.Delay(rng.Next(10));
                string pod = Volatile.Read(ref latestPod);
                switch (rng.Next(6))
                {
                    case 0 or 1:
                    {
                        var (ran, code) = await Call("RunPodSandbox", dl => runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = podConfig }, deadline: dl));
                        if (code == StatusCode.AlreadyExists)
                        {
                            // Another client's pod holds the name: work on that one, as a kubelet that lost track would.
                            var (listed, _) = await Call("ListPodSandbox", dl => runtime.ListPodSandboxAsync(new ListPodSandboxRequest(), deadline: dl));
                            if (listed?.Items.FirstOrDefault() is { } existing)
                            {
                                podIds[existing.Id] = true;
                                Volatile.Write(ref latestPod, existing.Id);
                            }
                        }
                        if (ran is not null)
                        {
                            podIds[ran.PodSandboxId] = true;
                            TrackPod(podConfig.Metadata.Uid, ran.PodSandboxId);
                            Volatile.Write(ref latestPod, ran.PodSandboxId);
                        }
                        break;
                    }
                    case 2 or 3:
                    {
                        if (pod.Length == 0) break;
                        // Half the creates reuse one container name, so name reservation races too.
                        string name = rng.Next(2) == 0 ? "same" : $"c{Interlocked.Increment(ref containerCounter)}";
                        var config = NewContainerConfig(podConfig, name, BusyboxImage, ["sleep", "3600"]);
                        var (created, code) = await Call("CreateContainer", dl => runtime.CreateContainerAsync(
                            new CreateContainerRequest { PodSandboxId = pod, Config = config, SandboxConfig = podConfig }, deadline: dl));
                        // The pod is gone: forget it, so the next round runs a new one instead of knocking on its door.
                        if (code == StatusCode.NotFound) Interlocked.CompareExchange(ref latestPod, "", pod);
                        if (created is null) break;
                        containerIds[created.ContainerId] = true;
                        await Call("StartContainer", dl => runtime.StartContainerAsync(new StartContainerRequest { ContainerId = created.ContainerId }, deadline: dl));
                        break;
                    }
                    case 4:
                        if (pod.Length > 0)
                            await Call("StopPodSandbox", dl => runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = pod }, deadline: dl));
                        break;
                    default:
                        if (pod.Length > 0)
                            await Call("RemovePodSandbox", dl => runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = pod }, deadline: dl));
                        break;
                }
            }
        })).ToList();
        await Task.WhenAll(clients);
        Output.WriteLine($"{Clients} clients for {clock.Elapsed.TotalSeconds:0} s: {podIds.Count} pods, {containerIds.Count} containers; answers: " +
            string.Join(", ", answers.OrderBy(a => a.Key).Select(a => $"{a.Key} {a.Value}")));
        Assert.True(wrong.IsEmpty, $"{wrong.Count} answers that are neither success nor a race's code:\n{string.Join('\n', wrong.Take(30))}\n--- daemon log tail:\n{daemon.LogTail(60)}");
        Assert.True(answers.GetValueOrDefault("RunPodSandbox OK") > 0 && answers.GetValueOrDefault("StartContainer OK") > 0,
            "the clients never ran a pod and started a container in it: the test proved nothing");

        // Everything can be removed, the kubelet's way: containers, then every pod of that name.
        foreach (var id in (await ListContainersAsync()).Select(c => c.Id).Concat(containerIds.Keys).Distinct())
            await ExpectRemovedAsync("RemoveContainer", dl => Runtime.RemoveContainerAsync(new RemoveContainerRequest { ContainerId = id }, deadline: dl));
        foreach (var id in (await ListPodsAsync()).Select(p => p.Id).Concat(podIds.Keys).Distinct())
        {
            await ExpectRemovedAsync("StopPodSandbox", dl => Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = id }, deadline: dl));
            await ExpectRemovedAsync("RemovePodSandbox", dl => Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id }, deadline: dl));
        }
        AssertIds([], (await ListPodsAsync()).Select(p => p.Id), "pods after removing everything");
        AssertIds([], (await ListContainersAsync()).Select(c => c.Id), "containers after removing everything");
        await AssertNothingLeftAsync(podIds.Keys.Select(id => new TestPod(id, podConfig)).ToList(), containerIds.Keys.ToList(), []);
    }

    /// <summary>A removal that must succeed, or find the object already gone.</summary>
    private async Task ExpectRemovedAsync<T>(string what, Func<DateTime, AsyncUnaryCall<T>> call)
    {
        try
        {
            await call(Deadline());
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.NotFound)
        {
        }
        catch (RpcException e)
        {
            throw Failure($"{what} after the race: {e.StatusCode}: {e.Status.Detail}");
        }
    }
}
