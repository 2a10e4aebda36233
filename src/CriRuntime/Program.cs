Console.WriteLine("criruntime");
