using Hapnd.Protocol;
using Hapnd.Worker;

// The worker: started by the supervisor inside the jail as `dotnet Hapnd.Worker.dll --public-key HEX`, it speaks the
// framed protocol on standard input and output and runs one signed artifact at a time. Nothing but frames reaches
// standard output: console writes go nowhere.
var input = Console.OpenStandardInput();
var output = Console.OpenStandardOutput();
Console.SetOut(TextWriter.Null);

var keyIndex = Array.IndexOf(args, "--public-key");
if (keyIndex < 0 || keyIndex + 1 >= args.Length)
{
    Console.Error.WriteLine("hapnd worker: usage: Hapnd.Worker.dll --public-key HEX");
    return 2;
}
ArtifactVerifier verifier;
try
{
    verifier = ArtifactVerifier.FromHex(args[keyIndex + 1]);
}
catch (FormatException error)
{
    Console.Error.WriteLine($"hapnd worker: {error.Message}");
    return 2;
}

var frames = new Frames(input, output);
var service = new WorkerService(verifier);
frames.SendHello();
try
{
    while (frames.ReadFrame() is { } frame)
    {
        service.Handle(frames, frame);
    }
}
catch (ProtocolException error)
{
    Console.Error.WriteLine($"hapnd worker: {error.Message}");
    return 3;
}
return 0;
