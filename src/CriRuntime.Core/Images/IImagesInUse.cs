namespace CriRuntime.Images;

/// <summary>Tells the image manager which images containers are made from, so it never removes one under them.</summary>
public interface IImagesInUse
{
    /// <summary>Given an image id, the id of a container made from it, or null.</summary>
    string? ContainerUsing(string imageId);
}
