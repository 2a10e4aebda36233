using Google.Protobuf;
using Google.Protobuf.Reflection;
using Runtime.V1;
using Xunit;

namespace CriRuntime.Tests.Proto;

// Proves that proto/runtime/v1/api.proto encodes exactly like upstream
// k8s.io/cri-api runtime/v1. Every expected byte string below was worked out by
// hand from the upstream field numbers and the protobuf wire format
// (tag = field_number << 3 | wire_type; wire type 0 = varint, 2 = length
// delimited; varints are 7 bits per byte, little end first, high bit = "more";
// proto3 leaves default values out; map entries are messages {key = 1, value = 2};
// repeated scalars are packed). A field carrying the wrong number, type or
// repeated/map shape in the proto changes these bytes and fails the test.
public class WireCompatibilityTests
{
    private static byte[] Hex(string hex)
    {
        var clean = hex.Replace(" ", "").Replace("\n", "").Replace("\r", "");
        return Convert.FromHexString(clean);
    }

    private static void AssertBytes(string expectedHex, IMessage message)
    {
        var expected = Convert.ToHexString(Hex(expectedHex)).ToLowerInvariant();
        var actual = Convert.ToHexString(message.ToByteArray()).ToLowerInvariant();
        Assert.Equal(expected, actual);
    }

    [Fact]
    public void VersionResponse_EncodesAllFourStrings()
    {
        var msg = new VersionResponse
        {
            Version = "0.1.0",
            RuntimeName = "cri",
            RuntimeVersion = "1.2.3",
            RuntimeApiVersion = "v1",
        };

        AssertBytes(
            "0a 05 302e312e30" +   // field 1 version, len 5, "0.1.0"
            "12 03 637269" +       // field 2 runtime_name, len 3, "cri"
            "1a 05 312e322e33" +   // field 3 runtime_version, len 5, "1.2.3"
            "22 02 7631",          // field 4 runtime_api_version, len 2, "v1"
            msg);
    }

    [Fact]
    public void PullImageRequest_WithHighNumberedImageSpecFieldsAndAuth()
    {
        var msg = new PullImageRequest
        {
            Image = new ImageSpec
            {
                Image = "nginx",
                UserSpecifiedImage = "ng",   // field 18
                RuntimeHandler = "rh",       // field 19
            },
            Auth = new AuthConfig
            {
                Username = "u",              // field 1
                RegistryToken = "t",         // field 6
            },
        };

        AssertBytes(
            "0a 11" +                // field 1 image (ImageSpec), len 17
            "  0a 05 6e67696e78" +   //   field 1 image, len 5, "nginx"
            "  92 01 02 6e67" +      //   field 18 user_specified_image: tag 18<<3|2 = 146 = varint 92 01, len 2, "ng"
            "  9a 01 02 7268" +      //   field 19 runtime_handler: tag 19<<3|2 = 154 = varint 9a 01, len 2, "rh"
            "12 06" +                // field 2 auth (AuthConfig), len 6
            "  0a 01 75" +           //   field 1 username, len 1, "u"
            "  32 01 74",            //   field 6 registry_token: tag 6<<3|2 = 0x32, len 1, "t"
            msg);
    }

    [Fact]
    public void PodSandboxConfig_MetadataLabelsAndLinuxSecurityContext()
    {
        var msg = new PodSandboxConfig
        {
            Metadata = new PodSandboxMetadata { Name = "p", Uid = "u1", Namespace = "ns", Attempt = 3 },
            Linux = new LinuxPodSandboxConfig
            {
                SecurityContext = new LinuxSandboxSecurityContext
                {
                    ReadonlyRootfs = true,                                   // field 4
                    RunAsGroup = new Int64Value { Value = 1000 },            // field 8
                    SupplementalGroupsPolicy = SupplementalGroupsPolicy.Strict, // field 11
                },
            },
        };
        msg.Labels.Add("app", "web");

        AssertBytes(
            "0a 0d" +                // field 1 metadata, len 13
            "  0a 01 70" +           //   field 1 name, "p"
            "  12 02 7531" +         //   field 2 uid, "u1"
            "  1a 02 6e73" +         //   field 3 namespace, "ns"
            "  20 03" +              //   field 4 attempt (varint) = 3
            "32 0a" +                // field 6 labels (map entry), tag 6<<3|2 = 0x32, len 10
            "  0a 03 617070" +       //   entry key (1), "app"
            "  12 03 776562" +       //   entry value (2), "web"
            "42 0b" +                // field 8 linux, tag 8<<3|2 = 0x42, len 11
            "  12 09" +              //   field 2 security_context, len 9
            "    20 01" +            //     field 4 readonly_rootfs = true
            "    42 03 08 e807" +    //     field 8 run_as_group, len 3: Int64Value field 1 = 1000 (varint e8 07)
            "    58 01",             //     field 11 supplemental_groups_policy: tag 11<<3|0 = 88 = 0x58, Strict = 1
            msg);
    }

    [Fact]
    public void ContainerStatus_HighNumberedFieldsEnumsAndPackedRepeated()
    {
        var user = new LinuxContainerUser { Uid = 1000, Gid = 1000 };
        user.SupplementalGroups.Add(new long[] { 4, 5 });
        var msg = new ContainerStatus
        {
            Id = "c1",
            State = ContainerState.ContainerExited,   // field 3, value 2
            ExitCode = 137,                           // field 7
            Reason = "OOMKilled",                     // field 10
            ImageId = "sha256:ab",                    // field 17
            User = new ContainerUser { Linux = user },// field 18
            StopSignal = Signal.Sigkill,              // field 19, value 13
        };

        AssertBytes(
            "0a 02 6331" +                    // field 1 id, "c1"
            "18 02" +                         // field 3 state (varint), CONTAINER_EXITED = 2
            "38 8901" +                       // field 7 exit_code: tag 0x38, 137 = varint 89 01
            "52 09 4f4f4d4b696c6c6564" +      // field 10 reason: tag 10<<3|2 = 0x52, len 9, "OOMKilled"
            "8a01 09 7368613235363a6162" +    // field 17 image_id: tag 17<<3|2 = 138 = varint 8a 01, len 9, "sha256:ab"
            "9201 0c" +                       // field 18 user: tag 146 = varint 92 01, len 12
            "  0a 0a" +                       //   field 1 linux, len 10
            "    08 e807" +                   //     field 1 uid = 1000
            "    10 e807" +                   //     field 2 gid = 1000
            "    1a 02 04 05" +               //     field 3 supplemental_groups, packed, len 2: 4, 5
            "9801 0d",                        // field 19 stop_signal: tag 19<<3|0 = 152 = varint 98 01, SIGKILL = 13
            msg);
    }

    [Fact]
    public void ListContainersRequest_FilterWithStateWrapperAndLabelSelector()
    {
        var filter = new ContainerFilter
        {
            State = new ContainerStateValue { State = ContainerState.ContainerRunning },
            PodSandboxId = "sb",
        };
        filter.LabelSelector.Add("k", "v");
        var msg = new ListContainersRequest { Filter = filter };

        AssertBytes(
            "0a 10" +              // field 1 filter, len 16
            "  12 02 08 01" +      //   field 2 state (ContainerStateValue), len 2: field 1 = CONTAINER_RUNNING (1)
            "  1a 02 7362" +       //   field 3 pod_sandbox_id, "sb"
            "  22 06" +            //   field 4 label_selector entry, len 6
            "    0a 01 6b" +       //     key "k"
            "    12 01 76",        //     value "v"
            msg);
    }

    [Fact]
    public void Mount_PropagationRecursiveReadOnlyAndMountOptions()
    {
        var msg = new Mount
        {
            ContainerPath = "/d",
            Propagation = MountPropagation.PropagationBidirectional, // field 5, value 2
            RecursiveReadOnly = true,                                // field 8
            ImageSubPath = "s",                                      // field 10
        };
        msg.MountOptions.Add("noexec");                              // field 11

        AssertBytes(
            "0a 02 2f64" +            // field 1 container_path, "/d"
            "28 02" +                 // field 5 propagation: tag 5<<3|0 = 0x28, BIDIRECTIONAL = 2
            "40 01" +                 // field 8 recursive_read_only: tag 8<<3|0 = 0x40, true
            "52 01 73" +              // field 10 image_sub_path: tag 0x52, "s"
            "5a 06 6e6f65786563",     // field 11 mount_options: tag 11<<3|2 = 0x5a, "noexec"
            msg);
    }

    [Fact]
    public void CheckpointPodRequest_RepeatedIdsAndOptionsMap()
    {
        var msg = new CheckpointPodRequest { PodSandboxId = "p", OutputPath = "/o" };
        msg.ContainerIds.Add("a");
        msg.ContainerIds.Add("b");
        msg.Options.Add("x", "y");

        AssertBytes(
            "0a 01 70" +            // field 1 pod_sandbox_id, "p"
            "12 02 2f6f" +          // field 2 output_path, "/o"
            "1a 01 61" +            // field 3 container_ids[0], "a" (repeated string: one tag per element)
            "1a 01 62" +            // field 3 container_ids[1], "b"
            "22 06 0a0178 120179",  // field 4 options entry, len 6: key "x", value "y"
            msg);
    }

    [Fact]
    public void KeyValue_ValueIsBytesSoNonUtf8RoundTrips()
    {
        // Upstream switched KeyValue.value from string to bytes (same wire type 2)
        // so that binary env values survive; a string field would mangle 0xff.
        var wire = Hex(
            "0a 01 4b" +     // field 1 key, "K"
            "12 02 ff00");   // field 2 value, len 2, bytes ff 00 (not valid UTF-8)

        var kv = KeyValue.Parser.ParseFrom(wire);

        Assert.Equal("K", kv.Key);
        Assert.Equal(new byte[] { 0xff, 0x00 }, kv.Value.ToByteArray());
        Assert.Equal(wire, kv.ToByteArray());
    }

    [Fact]
    public void StatusResponse_DecodesHandWrittenBytes()
    {
        var wire = Hex(
            "0a 12" +                               // field 1 status (RuntimeStatus), len 18
            "  0a 10" +                             //   field 1 conditions[0], len 16
            "    0a 0c 52756e74696d655265616479" +  //     field 1 type, len 12, "RuntimeReady"
            "    10 01" +                           //     field 2 status = true
            "1a 0c" +                               // field 3 runtime_handlers[0], len 12
            "  0a 04 72756e63" +                    //   field 1 name, "runc"
            "  12 04 0801 1001" +                   //   field 2 features: recursive_read_only_mounts, user_namespaces = true
            "22 04" +                               // field 4 features (RuntimeFeatures), len 4
            "  08 01" +                             //   field 1 supplemental_groups_policy = true
            "  18 01");                             //   field 3 mount_options = true

        var msg = StatusResponse.Parser.ParseFrom(wire);

        var condition = Assert.Single(msg.Status.Conditions);
        Assert.Equal("RuntimeReady", condition.Type);
        Assert.True(condition.Status);
        var handler = Assert.Single(msg.RuntimeHandlers);
        Assert.Equal("runc", handler.Name);
        Assert.True(handler.Features.RecursiveReadOnlyMounts);
        Assert.True(handler.Features.UserNamespaces);
        Assert.True(msg.Features.SupplementalGroupsPolicy);
        Assert.False(msg.Features.UserNamespacesHostNetwork);
        Assert.True(msg.Features.MountOptions);
        Assert.Empty(msg.Info);
        // Nothing was left over as an unknown field: re-encoding gives the same bytes.
        Assert.Equal(wire, msg.ToByteArray());
    }

    [Fact]
    public void ContainerEventResponse_DecodesHandWrittenBytes()
    {
        var wire = Hex(
            "0a 02 6331" +         // field 1 container_id, "c1"
            "10 02" +              // field 2 container_event_type = CONTAINER_STOPPED_EVENT (2)
            "18 ac02" +            // field 3 created_at = 300 (varint ac 02)
            "22 06" +              // field 4 pod_sandbox_status, len 6
            "  0a 02 7331" +       //   field 1 id, "s1"
            "  18 01" +            //   field 3 state = SANDBOX_NOTREADY (1)
            "2a 06" +              // field 5 containers_statuses[0], len 6
            "  0a 02 6331" +       //   field 1 id, "c1"
            "  18 02");            //   field 3 state = CONTAINER_EXITED (2)

        var msg = ContainerEventResponse.Parser.ParseFrom(wire);

        Assert.Equal("c1", msg.ContainerId);
        Assert.Equal(ContainerEventType.ContainerStoppedEvent, msg.ContainerEventType);
        Assert.Equal(300, msg.CreatedAt);
        Assert.Equal("s1", msg.PodSandboxStatus.Id);
        Assert.Equal(PodSandboxState.SandboxNotready, msg.PodSandboxStatus.State);
        var status = Assert.Single(msg.ContainersStatuses);
        Assert.Equal(ContainerState.ContainerExited, status.State);
        Assert.Equal(wire, msg.ToByteArray());
    }

    // RPC names as listed in upstream api.proto, in upstream order.
    private static readonly string[] UpstreamRuntimeServiceMethods =
    {
        "Version",
        "RunPodSandbox", "StopPodSandbox", "RemovePodSandbox", "PodSandboxStatus",
        "ListPodSandbox", "StreamPodSandboxes",
        "CreateContainer", "StartContainer", "StopContainer", "RemoveContainer",
        "ListContainers", "StreamContainers", "ContainerStatus",
        "UpdateContainerResources", "ReopenContainerLog",
        "ExecSync", "Exec", "Attach", "PortForward",
        "ContainerStats", "ListContainerStats", "StreamContainerStats",
        "PodSandboxStats", "ListPodSandboxStats", "StreamPodSandboxStats",
        "UpdateRuntimeConfig", "Status",
        "CheckpointContainer", "CheckpointPod", "RestorePod",
        "GetContainerEvents",
        "ListMetricDescriptors", "ListPodSandboxMetrics", "StreamPodSandboxMetrics",
        "RuntimeConfig", "UpdatePodSandboxResources",
    };

    private static readonly string[] UpstreamImageServiceMethods =
    {
        "ListImages", "StreamImages", "ImageStatus", "PullImage", "RemoveImage", "ImageFsInfo",
    };

    // The only server-streaming RPCs upstream; nothing is client-streaming.
    private static readonly string[] UpstreamServerStreaming =
    {
        "StreamPodSandboxes", "StreamContainers", "StreamContainerStats", "StreamPodSandboxStats",
        "GetContainerEvents", "StreamPodSandboxMetrics", "StreamImages",
    };

    [Fact]
    public void RuntimeService_HasExactlyTheUpstreamMethods()
    {
        var names = RuntimeService.Descriptor.Methods.Select(m => m.Name).ToArray();
        Assert.Equal(UpstreamRuntimeServiceMethods, names);
    }

    [Fact]
    public void ImageService_HasExactlyTheUpstreamMethods()
    {
        var names = ImageService.Descriptor.Methods.Select(m => m.Name).ToArray();
        Assert.Equal(UpstreamImageServiceMethods, names);
    }

    [Fact]
    public void Services_LiveInPackageRuntimeV1_SoGrpcPathsMatch()
    {
        Assert.Equal("runtime.v1", RuntimeService.Descriptor.File.Package);
        Assert.Equal("runtime.v1.RuntimeService", RuntimeService.Descriptor.FullName);
        Assert.Equal("runtime.v1.ImageService", ImageService.Descriptor.FullName);
    }

    [Fact]
    public void StreamingShape_MatchesUpstream()
    {
        var methods = RuntimeService.Descriptor.Methods.Concat(ImageService.Descriptor.Methods).ToList();
        var serverStreaming = methods.Where(m => m.IsServerStreaming).Select(m => m.Name).OrderBy(n => n);
        Assert.Equal(UpstreamServerStreaming.OrderBy(n => n), serverStreaming);
        Assert.DoesNotContain(methods, m => m.IsClientStreaming);
    }

    [Theory]
    [InlineData("GetContainerEvents", "GetEventsRequest", "ContainerEventResponse")]
    [InlineData("StreamPodSandboxes", "StreamPodSandboxesRequest", "StreamPodSandboxesResponse")]
    [InlineData("StreamPodSandboxMetrics", "StreamPodSandboxMetricsRequest", "StreamPodSandboxMetricsResponse")]
    [InlineData("RuntimeConfig", "RuntimeConfigRequest", "RuntimeConfigResponse")]
    [InlineData("RestorePod", "RestorePodRequest", "RestorePodResponse")]
    public void RuntimeService_MethodTypes(string method, string input, string output)
    {
        MethodDescriptor m = RuntimeService.Descriptor.FindMethodByName(method);
        Assert.NotNull(m);
        Assert.Equal("runtime.v1." + input, m.InputType.FullName);
        Assert.Equal("runtime.v1." + output, m.OutputType.FullName);
    }
}
